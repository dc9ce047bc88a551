// Package points is reserved for the points program: orders in, the
// append-only ledger with materialised balances, expiry lots, earning
// rules, tiers and rewards (issue "Points, orders, tiers and rewards"). It
// holds no code yet; nothing in the service depends on it.
package points
