package member

import (
	"context"

	"gorm.io/gorm"
)

// Join is how a member new to the merchant arrived: the QR scene of the
// follow that created them, or the invitation code a login carried. The
// referral programme reads its invitations out of it.
type Join struct {
	Scene string // the follow's QR scene (without WeChat's qrscene_ prefix); empty when none
	Ref   string // the invitation code of a mini-program or H5 login; empty when none
}

// JoinHook is told, inside the transaction that created it, of every member
// a follow or a login created (never of a member who came back, was
// recognised by unionid or merged). A hook that fails fails the follow or
// login, which is retried; a hook must therefore ignore what it does not
// understand rather than fail on it.
type JoinHook func(ctx context.Context, tx *gorm.DB, m Member, j Join) error

// OnJoin registers a join hook. Register before serving.
func (s *Service) OnJoin(h JoinHook) { s.joinHooks = append(s.joinHooks, h) }

func (s *Service) joined(ctx context.Context, st store, m Member, j Join) error {
	if j.Scene == "" && j.Ref == "" {
		return nil
	}
	for _, h := range s.joinHooks {
		if err := h(ctx, st.db, m, j); err != nil {
			return err
		}
	}
	return nil
}
