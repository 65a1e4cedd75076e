package secrets

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func (s *Server) deleteSecret(k auth.Key, in *sm.DeleteSecretInput) (*sm.DeleteSecretOutput, error) {
	force := aws.ToBool(in.ForceDeleteWithoutRecovery)
	days := int64(defaultRecoveryWindow)
	switch {
	case force && in.RecoveryWindowInDays != nil:
		return nil, invalidParam("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	case in.RecoveryWindowInDays != nil:
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, invalidParam("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	var out *sm.DeleteSecretOutput
	err := s.o.Store.Update(func(tx store.Tx) error {
		sec, err := s.findSecret(tx, aws.ToString(in.SecretId), s.writeCheck(k, "secretsmanager:DeleteSecret"))
		if err != nil {
			return err
		}
		now := s.o.Now().UTC()
		if force {
			out = &sm.DeleteSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name), DeletionDate: aws.Time(now)}
			return tx.Delete(SecretsBucket, sec.Name)
		}
		if sec.Deleted != nil {
			return invalidRequest("You can't perform this operation on the secret because it was already scheduled for deletion.")
		}
		when := now.Add(time.Duration(days) * 24 * time.Hour)
		sec.Deleted, sec.DeletionDate = &now, &when
		out = &sm.DeleteSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name), DeletionDate: aws.Time(when)}
		return tx.Put(SecretsBucket, sec.Name, sec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) restoreSecret(k auth.Key, in *sm.RestoreSecretInput) (*sm.RestoreSecretOutput, error) {
	var out *sm.RestoreSecretOutput
	err := s.changeSecret(k, "secretsmanager:RestoreSecret", in.SecretId, true, func(_ store.Tx, sec *secret) error {
		sec.Deleted, sec.DeletionDate = nil, nil
		out = &sm.RestoreSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// purgeBatch bounds one purge transaction (etcd's max_txn_ops).
const purgeBatch = 100

// RunPurge removes, every interval until ctx ends, the secrets whose
// recovery window has passed, so that their sealed values leave the store
// (until then they are already invisible). It returns nil when ctx ends;
// a failed sweep is reported to onErr and retried at the next tick.
func (s *Server) RunPurge(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Purge(); err != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge removes the secrets past their deletion date, in batches.
func (s *Server) Purge() error {
	for {
		n := 0
		err := s.o.Store.Update(func(tx store.Tx) error {
			n = 0
			var names []string
			if err := tx.Scan(SecretsBucket, store.Range{}, func(key string, raw []byte) error {
				var sec secret
				if err := jsonUnmarshal(raw, &sec); err != nil {
					return err
				}
				if s.gone(&sec) {
					names = append(names, key)
				}
				if len(names) == purgeBatch {
					return store.ErrStopScan
				}
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				if err := tx.Delete(SecretsBucket, name); err != nil {
					return err
				}
			}
			n = len(names)
			return nil
		})
		if err != nil {
			return fmt.Errorf("purge deleted secrets: %w", err)
		}
		if n < purgeBatch {
			return nil
		}
	}
}
