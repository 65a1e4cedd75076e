package secrets

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/schemas"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// Secrets Manager's version stages and limits.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"

	maxSecretValue        = 65536
	maxSecretVersions     = 100
	maxStagesPerVersion   = 20
	defaultRecoveryWindow = 30
	// DefaultSecretsKey is the only KmsKeyId accepted: values are sealed
	// with the endpoint's master key, standing in for AWS's managed key.
	DefaultSecretsKey = "alias/aws/secretsmanager"
)

// secret is a secret's record under its name.
type secret struct {
	Name        string    `json:"name"`
	ARN         string    `json:"arn"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Changed     time.Time `json:"changed"`
	// DeletionDate, when set, is when the secret, scheduled for deletion,
	// is gone for good; until then RestoreSecret brings it back.
	DeletionDate *time.Time `json:"deletionDate,omitempty"`
	Deleted      *time.Time `json:"deleted,omitempty"`
	Tags         []tag      `json:"tags,omitempty"`
	// Versions, oldest first.
	Versions []secretVersion `json:"versions,omitempty"`
}

type secretVersion struct {
	ID      string    `json:"id"`
	Stages  []string  `json:"stages,omitempty"`
	Created time.Time `json:"created"`
	Binary  bool      `json:"binary,omitempty"`
	// Sealed is the value sealed under aadSecret(arn, id).
	Sealed []byte `json:"sealed"`
}

func aadSecret(arn, versionID string) string { return "secretsmanager|" + arn + "|" + versionID }

type smAPI struct{ *Server }

var _ awsproto.Handler = smAPI{}

// ServeAWS runs one Secrets Manager operation.
func (a smAPI) ServeAWS(r *awsproto.Request) ([]byte, error) {
	var out smithy.Serializable
	var err error
	switch r.Operation {
	case "CreateSecret":
		out, err = call(r, a.createSecret)
	case "PutSecretValue":
		out, err = call(r, a.putSecretValue)
	case "UpdateSecret":
		out, err = call(r, a.updateSecret)
	case "GetSecretValue":
		out, err = call(r, a.getSecretValue)
	case "DescribeSecret":
		out, err = call(r, a.describeSecret)
	case "GetResourcePolicy":
		out, err = call(r, a.getResourcePolicy)
	case "ListSecrets":
		out, err = call(r, a.listSecrets)
	case "DeleteSecret":
		out, err = call(r, a.deleteSecret)
	case "RestoreSecret":
		out, err = call(r, a.restoreSecret)
	case "TagResource":
		out, err = call(r, a.tagResource)
	case "UntagResource":
		out, err = call(r, a.untagResource)
	default:
		return nil, awsproto.ClientError("InvalidAction", "The Secrets Manager operation %s is not served by this endpoint.", r.Operation)
	}
	if err != nil {
		return nil, err
	}
	return awsproto.EncodeOutput(r.Context, r, awsproto.Codec{Service: schemas.Secretsmanager,
		Operation: smithy.NewOperationSchema(schemas.GetSecretValue, schemas.GetSecretValueRequest, schemas.GetSecretValueResponse)}, out)
}

func invalidParam(format string, args ...any) error {
	return awsproto.ClientError("InvalidParameterException", format, args...)
}

func invalidRequest(format string, args ...any) error {
	return awsproto.ClientError("InvalidRequestException", format, args...)
}

func secretNotFound() error {
	return awsproto.ClientError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

// arnSuffixRE is the "-AbCdEf" AWS appends to a secret's name in its ARN.
var arnSuffixRE = regexp.MustCompile(`-[A-Za-z0-9]{6}$`)

func (s *Server) secretArnPrefix() string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:", s.o.Region, s.o.AccountID)
}

func (s *Server) newSecretArn(name string) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret ARN: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return s.secretArnPrefix() + name + "-" + string(b), nil
}

// gone reports whether a secret scheduled for deletion has passed its
// deletion date: it no longer exists.
func (s *Server) gone(sec *secret) bool {
	return sec.DeletionDate != nil && !s.o.Now().Before(*sec.DeletionDate)
}

// findSecret resolves a SecretId (name, full ARN or partial ARN without the
// random suffix) and checks access with check, given the ARN it names.
// A secret past its deletion date is removed (when tx writes) and not
// found.
func (s *Server) findSecret(tx store.Tx, id string, check func(arn string) error) (*secret, error) {
	if id == "" {
		return nil, invalidParam("SecretId is required.")
	}
	name := id
	if rest, ok := strings.CutPrefix(id, s.secretArnPrefix()); ok {
		if arnSuffixRE.MatchString(rest) {
			// A full ARN (or a partial one whose name ends like a suffix).
			var sec secret
			if err := tx.Get(SecretsBucket, rest[:len(rest)-7], &sec); err == nil && sec.ARN == id && !s.gone(&sec) {
				return &sec, check(sec.ARN)
			}
		}
		name = rest // a partial ARN: the name
	} else if strings.HasPrefix(id, "arn:") {
		return nil, errors.Join(check(id), secretNotFound())
	}
	var sec secret
	err := tx.Get(SecretsBucket, name, &sec)
	switch {
	case isNotFound(err) || (err == nil && s.gone(&sec)):
		if err := check(s.secretArnPrefix() + name); err != nil {
			return nil, err
		}
		return nil, secretNotFound()
	case err != nil:
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	if err := check(sec.ARN); err != nil {
		return nil, err
	}
	return &sec, nil
}

func (s *Server) writeCheck(k auth.Key, action string) func(string) error {
	return func(arn string) error { return mayWrite(k, action, arn) }
}

func (s *Server) readCheck(k auth.Key, action string) func(string) error {
	return func(arn string) error { return s.mayRead(k, action, arn) }
}

// secretValue checks that exactly one of SecretString and SecretBinary is
// set (or, with optional, none) and returns it.
func secretValue(str *string, bin []byte, optional bool) (value []byte, binary, set bool, err error) {
	switch {
	case str != nil && bin != nil:
		return nil, false, false, invalidParam("You can't specify both a binary secret value and a string secret value in the same secret.")
	case str != nil:
		value = []byte(*str)
	case bin != nil:
		value, binary = bin, true
	case optional:
		return nil, false, false, nil
	default:
		return nil, false, false, invalidParam("You must provide either SecretString or SecretBinary.")
	}
	if len(value) == 0 || len(value) > maxSecretValue {
		return nil, false, false, invalidParam("The secret value must be between 1 and %d bytes.", maxSecretValue)
	}
	return value, binary, true, nil
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9-]{32,64}$`)

// versionToken is the ClientRequestToken (the new version's id), or a fresh
// UUID when none is sent.
func versionToken(t *string) (string, error) {
	if t == nil {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("generate version id: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
	}
	if !tokenRE.MatchString(*t) {
		return "", invalidParam("ClientRequestToken must be 32 to 64 letters, digits or hyphens.")
	}
	return *t, nil
}

func kmsKey(k *string) error {
	switch aws.ToString(k) {
	case "", DefaultSecretsKey, "aws/secretsmanager":
		return nil
	}
	return invalidParam("KmsKeyId %s is not served: this endpoint seals secret values with its master key, which stands for %s; omit KmsKeyId.", aws.ToString(k), DefaultSecretsKey)
}

// addVersion adds a version with the given stages (AWSCURRENT when none):
// each stage moves to it, and the version losing AWSCURRENT gets
// AWSPREVIOUS. An existing id with the same value is an idempotent
// retry (no change, ok false); with another value it is refused.
func (s *Server) addVersion(sec *secret, id string, value []byte, binary bool, stages []string) (changed bool, err error) {
	if len(stages) == 0 {
		stages = []string{StageCurrent}
	}
	if len(stages) > maxStagesPerVersion {
		return false, invalidParam("A version can have at most %d staging labels.", maxStagesPerVersion)
	}
	for _, st := range stages {
		if st == "" || len(st) > 256 {
			return false, invalidParam("Staging labels must be 1-256 characters.")
		}
	}
	for _, v := range sec.Versions {
		if v.ID != id {
			continue
		}
		old, err := s.o.Sealer.OpenValue(aadSecret(sec.ARN, v.ID), v.Sealed)
		if err != nil {
			return false, fmt.Errorf("secret %s version %s: %w", sec.Name, v.ID, err)
		}
		if v.Binary != binary || !bytes.Equal(old, value) {
			return false, awsproto.ClientError("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		return false, nil
	}
	sealed, err := s.o.Sealer.SealValue(aadSecret(sec.ARN, id), value)
	if err != nil {
		return false, fmt.Errorf("seal secret %s: %w", sec.Name, err)
	}
	if slices.Contains(stages, StageCurrent) {
		for i := range sec.Versions {
			v := &sec.Versions[i]
			v.Stages = slices.DeleteFunc(v.Stages, func(st string) bool { return st == StagePrevious })
		}
		for i := range sec.Versions {
			if v := &sec.Versions[i]; slices.Contains(v.Stages, StageCurrent) {
				v.Stages = append(v.Stages, StagePrevious)
			}
		}
	}
	for i := range sec.Versions {
		v := &sec.Versions[i]
		v.Stages = slices.DeleteFunc(v.Stages, func(st string) bool { return slices.Contains(stages, st) })
	}
	now := s.o.Now().UTC()
	sec.Versions = append(sec.Versions, secretVersion{ID: id, Stages: slices.Clone(stages), Created: now, Binary: binary, Sealed: sealed})
	// Versions without a staging label are deprecated; the oldest go once
	// there are more than AWS keeps.
	for len(sec.Versions) > maxSecretVersions {
		i := slices.IndexFunc(sec.Versions, func(v secretVersion) bool { return len(v.Stages) == 0 })
		if i < 0 {
			break
		}
		sec.Versions = slices.Delete(sec.Versions, i, i+1)
	}
	sec.Changed = now
	return true, nil
}

func (s *Server) createSecret(k auth.Key, in *sm.CreateSecretInput) (*sm.CreateSecretOutput, error) {
	name := aws.ToString(in.Name)
	if err := mayWrite(k, "secretsmanager:CreateSecret", s.secretArnPrefix()+name); err != nil {
		return nil, err
	}
	switch {
	case !secretNameRE.MatchString(name):
		return nil, invalidParam("Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	case len(in.AddReplicaRegions) > 0:
		return nil, invalidParam("AddReplicaRegions: replication to other regions is not served by this endpoint.")
	case in.ForceOverwriteReplicaSecret:
		return nil, invalidParam("ForceOverwriteReplicaSecret: replication is not served by this endpoint.")
	case in.Type != nil:
		return nil, invalidParam("Type: managed external secrets are not served by this endpoint.")
	case in.Description != nil && len(*in.Description) > 2048:
		return nil, invalidParam("Description must be at most 2048 characters.")
	}
	if err := kmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	value, binary, hasValue, err := secretValue(in.SecretString, in.SecretBinary, true)
	if err != nil {
		return nil, err
	}
	tags, err := smTags(in.Tags)
	if err != nil {
		return nil, err
	}
	id, err := versionToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	var out *sm.CreateSecretOutput
	err = s.o.Store.Update(func(tx store.Tx) error {
		var sec secret
		err := tx.Get(SecretsBucket, name, &sec)
		switch {
		case err == nil && sec.Deleted != nil && !s.gone(&sec):
			return invalidRequest("You can't create this secret because a secret with this name is already scheduled for deletion.")
		case err == nil && !s.gone(&sec):
			// A retry of the same request (same token and value) succeeds.
			if i := slices.IndexFunc(sec.Versions, func(v secretVersion) bool { return v.ID == id }); i >= 0 && hasValue {
				if changed, err := s.addVersion(&sec, id, value, binary, nil); err != nil || changed {
					return awsproto.ClientError("ResourceExistsException", "The operation failed because the secret %s already exists.", name)
				}
				out = &sm.CreateSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(name), VersionId: aws.String(id)}
				return nil
			}
			return awsproto.ClientError("ResourceExistsException", "The operation failed because the secret %s already exists.", name)
		case err != nil && !isNotFound(err):
			return fmt.Errorf("read secret %s: %w", name, err)
		}
		arn, err := s.newSecretArn(name)
		if err != nil {
			return err
		}
		now := s.o.Now().UTC()
		sec = secret{Name: name, ARN: arn, Description: aws.ToString(in.Description), Created: now, Changed: now, Tags: tags}
		out = &sm.CreateSecretOutput{ARN: aws.String(arn), Name: aws.String(name), ReplicationStatus: []types.ReplicationStatusType{}}
		if hasValue {
			if _, err := s.addVersion(&sec, id, value, binary, nil); err != nil {
				return err
			}
			out.VersionId = aws.String(id)
		}
		return tx.Put(SecretsBucket, name, sec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// changeSecret runs change on the secret SecretId names, refusing one
// scheduled for deletion, and stores it.
func (s *Server) changeSecret(k auth.Key, action string, id *string, allowDeleted bool, change func(tx store.Tx, sec *secret) error) error {
	return s.o.Store.Update(func(tx store.Tx) error {
		sec, err := s.findSecret(tx, aws.ToString(id), s.writeCheck(k, action))
		if err != nil {
			return err
		}
		if sec.Deleted != nil && !allowDeleted {
			return invalidRequest("You can't perform this operation on the secret because it was marked for deletion.")
		}
		if err := change(tx, sec); err != nil {
			return err
		}
		return tx.Put(SecretsBucket, sec.Name, sec)
	})
}

func (s *Server) putSecretValue(k auth.Key, in *sm.PutSecretValueInput) (*sm.PutSecretValueOutput, error) {
	if in.RotationToken != nil {
		return nil, invalidParam("RotationToken: rotation is not served by this endpoint.")
	}
	value, binary, _, err := secretValue(in.SecretString, in.SecretBinary, false)
	if err != nil {
		return nil, err
	}
	id, err := versionToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	var out *sm.PutSecretValueOutput
	err = s.changeSecret(k, "secretsmanager:PutSecretValue", in.SecretId, false, func(_ store.Tx, sec *secret) error {
		if _, err := s.addVersion(sec, id, value, binary, in.VersionStages); err != nil {
			return err
		}
		i := slices.IndexFunc(sec.Versions, func(v secretVersion) bool { return v.ID == id })
		out = &sm.PutSecretValueOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name), VersionId: aws.String(id),
			VersionStages: slices.Clone(sec.Versions[i].Stages)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) updateSecret(k auth.Key, in *sm.UpdateSecretInput) (*sm.UpdateSecretOutput, error) {
	if in.Type != nil {
		return nil, invalidParam("Type: managed external secrets are not served by this endpoint.")
	}
	if err := kmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if in.Description != nil && len(*in.Description) > 2048 {
		return nil, invalidParam("Description must be at most 2048 characters.")
	}
	value, binary, hasValue, err := secretValue(in.SecretString, in.SecretBinary, true)
	if err != nil {
		return nil, err
	}
	id, err := versionToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	var out *sm.UpdateSecretOutput
	err = s.changeSecret(k, "secretsmanager:UpdateSecret", in.SecretId, false, func(_ store.Tx, sec *secret) error {
		out = &sm.UpdateSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name)}
		if in.Description != nil {
			sec.Description = *in.Description
			sec.Changed = s.o.Now().UTC()
		}
		if hasValue {
			if _, err := s.addVersion(sec, id, value, binary, nil); err != nil {
				return err
			}
			out.VersionId = aws.String(id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) getSecretValue(k auth.Key, in *sm.GetSecretValueInput) (*sm.GetSecretValueOutput, error) {
	var out *sm.GetSecretValueOutput
	err := s.o.Store.View(func(tx store.Tx) error {
		sec, err := s.findSecret(tx, aws.ToString(in.SecretId), s.readCheck(k, "secretsmanager:GetSecretValue"))
		if err != nil {
			return err
		}
		if sec.Deleted != nil {
			return invalidRequest("You can't perform this operation on the secret because it was marked for deletion.")
		}
		stage := aws.ToString(in.VersionStage)
		if in.VersionId == nil && stage == "" {
			stage = StageCurrent
		}
		i := slices.IndexFunc(sec.Versions, func(v secretVersion) bool {
			return (in.VersionId == nil || v.ID == *in.VersionId) && (stage == "" || slices.Contains(v.Stages, stage))
		})
		if i < 0 {
			return awsproto.ClientError("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for %s.", versionWhat(in.VersionId, stage))
		}
		v := sec.Versions[i]
		plain, err := s.o.Sealer.OpenValue(aadSecret(sec.ARN, v.ID), v.Sealed)
		if err != nil {
			return fmt.Errorf("secret %s version %s: %w", sec.Name, v.ID, err)
		}
		out = &sm.GetSecretValueOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name), VersionId: aws.String(v.ID),
			VersionStages: slices.Clone(v.Stages), CreatedDate: aws.Time(v.Created)}
		if v.Binary {
			out.SecretBinary = plain
		} else {
			out.SecretString = aws.String(string(plain))
		}
		return nil
	})
	return out, err
}

func versionWhat(id *string, stage string) string {
	var parts []string
	if id != nil {
		parts = append(parts, "VersionId: "+*id)
	}
	if stage != "" {
		parts = append(parts, "staging label: "+stage)
	}
	return strings.Join(parts, ", ")
}

func versionsToStages(sec *secret) map[string][]string {
	m := map[string][]string{}
	for _, v := range sec.Versions {
		if len(v.Stages) > 0 {
			m[v.ID] = slices.Clone(v.Stages)
		}
	}
	return m
}

func (s *Server) describeSecret(k auth.Key, in *sm.DescribeSecretInput) (*sm.DescribeSecretOutput, error) {
	var out *sm.DescribeSecretOutput
	err := s.o.Store.View(func(tx store.Tx) error {
		sec, err := s.findSecret(tx, aws.ToString(in.SecretId), s.readCheck(k, "secretsmanager:DescribeSecret"))
		if err != nil {
			return err
		}
		out = &sm.DescribeSecretOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name), Description: optional(sec.Description),
			CreatedDate: aws.Time(sec.Created), LastChangedDate: aws.Time(sec.Changed), DeletedDate: sec.Deleted,
			Tags: outTags(sec.Tags), VersionIdsToStages: versionsToStages(sec), RotationEnabled: aws.Bool(false)}
		return nil
	})
	return out, err
}

// getResourcePolicy answers that the secret has no resource policy: this
// endpoint serves none (PutResourcePolicy is not served), so none can be
// attached. Clients that read a secret back ask for it (Terraform's
// aws_secretsmanager_secret does on every refresh).
func (s *Server) getResourcePolicy(k auth.Key, in *sm.GetResourcePolicyInput) (*sm.GetResourcePolicyOutput, error) {
	var out *sm.GetResourcePolicyOutput
	err := s.o.Store.View(func(tx store.Tx) error {
		sec, err := s.findSecret(tx, aws.ToString(in.SecretId), s.writeCheck(k, "secretsmanager:GetResourcePolicy"))
		if err != nil {
			return err
		}
		out = &sm.GetResourcePolicyOutput{ARN: aws.String(sec.ARN), Name: aws.String(sec.Name)}
		return nil
	})
	return out, err
}
