package secrets

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

func (s *Server) deleteParameter(k auth.Key, in *ssm.DeleteParameterInput) (*ssm.DeleteParameterOutput, error) {
	err := s.o.Store.Update(func(tx store.Tx) error {
		name, err := s.resolveName(tx, aws.ToString(in.Name))
		if err != nil {
			return err
		}
		if err := mayWrite(k, "ssm:DeleteParameter", s.paramArn(name)); err != nil {
			return err
		}
		if _, err := s.getParam(tx, name); err != nil {
			return err
		}
		return tx.Delete(ParametersBucket, name)
	})
	if err != nil {
		return nil, err
	}
	return &ssm.DeleteParameterOutput{}, nil
}

func (s *Server) deleteParameters(k auth.Key, in *ssm.DeleteParametersInput) (*ssm.DeleteParametersOutput, error) {
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, ssmValidation("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	var out *ssm.DeleteParametersOutput
	err := s.o.Store.Update(func(tx store.Tx) error {
		out = &ssm.DeleteParametersOutput{DeletedParameters: []string{}, InvalidParameters: []string{}}
		for _, n := range in.Names {
			name, err := s.resolveName(tx, n)
			if err != nil {
				return err
			}
			if err := mayWrite(k, "ssm:DeleteParameters", s.paramArn(name)); err != nil {
				return err
			}
			if _, err := s.getParam(tx, name); err != nil {
				if ae := (*awsproto.Error)(nil); errors.As(err, &ae) && ae.Type == "ParameterNotFound" {
					out.InvalidParameters = append(out.InvalidParameters, n)
					continue
				}
				return err
			}
			if err := tx.Delete(ParametersBucket, name); err != nil {
				return err
			}
			out.DeletedParameters = append(out.DeletedParameters, n)
		}
		return nil
	})
	return out, err
}
