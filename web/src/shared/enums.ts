// The closed sets the screens list in order (the API's enums).
export const STAGES = ['potential', 'new', 'repeat', 'loyal', 'at_risk', 'churned', 'won_back', 'lost'] as const
export const PYRAMID = ['platinum', 'gold', 'iron', 'lead'] as const
