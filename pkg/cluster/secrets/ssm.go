package secrets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/schemas"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// SSM's limits and defaults.
const (
	maxParameterName   = 1011
	maxHierarchyLevels = 15
	maxStandardValue   = 4096
	maxAdvancedValue   = 8192
	maxParamVersions   = 100
	maxTags            = 50
	// DefaultSSMKey is the only KeyId SecureString accepts: the values
	// are sealed with the endpoint's master key, standing in for AWS's
	// managed key of that alias.
	DefaultSSMKey = "alias/aws/ssm"
)

// parameter is a parameter's record under its name: every kept version,
// oldest first, the last the current one.
type parameter struct {
	Name     string         `json:"name"`
	Versions []paramVersion `json:"versions"`
	Tags     []tag          `json:"tags,omitempty"`
}

type paramVersion struct {
	Version int64  `json:"version"`
	Type    string `json:"type"`
	// Sealed is the value sealed under aadParam(name, version).
	Sealed         []byte    `json:"sealed"`
	Description    string    `json:"description,omitempty"`
	AllowedPattern string    `json:"allowedPattern,omitempty"`
	Tier           string    `json:"tier"`
	DataType       string    `json:"dataType"`
	KeyID          string    `json:"keyId,omitempty"`
	Modified       time.Time `json:"modified"`
	ModifiedUser   string    `json:"modifiedUser"`
}

func (p *parameter) current() *paramVersion { return &p.Versions[len(p.Versions)-1] }

func aadParam(name string, version int64) string {
	return "ssm-parameter|" + name + "|" + strconv.FormatInt(version, 10)
}

// paramArn is arn:aws:ssm:region:account:parameter/NAME, without a doubled
// slash for hierarchical names.
func (s *Server) paramArn(name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", s.o.Region, s.o.AccountID, strings.TrimPrefix(name, "/"))
}

type ssmAPI struct{ *Server }

var _ awsproto.Handler = ssmAPI{}

// ServeAWS runs one SSM operation.
func (a ssmAPI) ServeAWS(r *awsproto.Request) ([]byte, error) {
	var out smithy.Serializable
	var err error
	switch r.Operation {
	case "PutParameter":
		out, err = call(r, a.putParameter)
	case "GetParameter":
		out, err = call(r, a.getParameter)
	case "GetParameters":
		out, err = call(r, a.getParameters)
	case "GetParametersByPath":
		out, err = call(r, a.getParametersByPath)
	case "GetParameterHistory":
		out, err = call(r, a.getParameterHistory)
	case "DeleteParameter":
		out, err = call(r, a.deleteParameter)
	case "DeleteParameters":
		out, err = call(r, a.deleteParameters)
	case "DescribeParameters":
		out, err = call(r, a.describeParameters)
	case "AddTagsToResource":
		out, err = call(r, a.addTags)
	case "RemoveTagsFromResource":
		out, err = call(r, a.removeTags)
	case "ListTagsForResource":
		out, err = call(r, a.listTags)
	default:
		return nil, awsproto.ClientError("InvalidAction", "The SSM operation %s is not served by this endpoint.", r.Operation)
	}
	if err != nil {
		return nil, err
	}
	return awsproto.EncodeOutput(r.Context, r, awsproto.Codec{Service: schemas.AmazonSSM,
		Operation: smithy.NewOperationSchema(schemas.GetParameter, schemas.GetParameterRequest, schemas.GetParameterResult)}, out)
}

// call decodes the input of op's type and runs op.
func call[In any, Out smithy.Serializable](r *awsproto.Request, op func(auth.Key, *In) (Out, error)) (smithy.Serializable, error) {
	in := new(In)
	if err := decodeInput(r.Body, in); err != nil {
		return nil, err
	}
	return op(r.Key, in)
}

func ssmValidation(format string, args ...any) error {
	return awsproto.ClientError("ValidationException", format, args...)
}

var paramNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)

// validParamName checks AWS's rules for a parameter name.
func validParamName(name string) error {
	switch {
	case name == "":
		return ssmValidation("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(name) > maxParameterName:
		return ssmValidation("1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length less than or equal to %d", maxParameterName)
	case !paramNameRE.MatchString(name):
		return ssmValidation("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). It must use only letters, numbers, or the following symbols: . (period), - (hyphen), _ (underscore). Special characters are not allowed. All sub-paths, if specified, must use the forward slash symbol \"/\". Valid example: /get/parameters2-/by1./path0_.")
	case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
		return ssmValidation("Parameter name must be a fully qualified name.")
	case strings.Contains(name, "//") || strings.HasSuffix(name, "/"):
		return ssmValidation("Parameter name %s: each level of the hierarchy must have a name; \"//\" and a trailing \"/\" are not allowed.", name)
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return ssmValidation("No access to reserved parameter name: %s.", name)
	}
	if strings.Count(name, "/") > maxHierarchyLevels {
		return awsproto.ClientError("HierarchyLevelLimitExceededException", "A hierarchy can have a maximum of %d levels: %s.", maxHierarchyLevels, name)
	}
	return nil
}

// selector splits "name:version" (or "name:label") as GetParameter takes it.
func splitSelector(s string) (name, selector string) {
	if i := strings.LastIndexByte(s, ':'); i > 0 && !strings.HasPrefix(s, "arn:") {
		return s[:i], s[i+1:]
	}
	if strings.HasPrefix(s, "arn:") {
		// arn:aws:ssm:region:account:parameter/name[:selector]
		parts := strings.SplitN(s, ":", 7)
		if len(parts) == 7 {
			return strings.Join(parts[:6], ":"), parts[6]
		}
	}
	return s, ""
}

// resolveName turns what a caller passed as Name (a name or this
// endpoint's parameter ARN) into the parameter's name.
func (s *Server) resolveName(tx store.Tx, n string) (string, error) {
	rest, ok := strings.CutPrefix(n, fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/", s.o.Region, s.o.AccountID))
	if !ok {
		if strings.HasPrefix(n, "arn:") {
			return "", ssmValidation("Parameter ARN %s is not one of this endpoint's (arn:aws:ssm:%s:%s:parameter/NAME).", n, s.o.Region, s.o.AccountID)
		}
		return n, nil
	}
	// The ARN drops a hierarchical name's leading slash; a one-level name
	// may have had one or not.
	if strings.Contains(rest, "/") {
		return "/" + rest, nil
	}
	var p parameter
	if err := tx.Get(ParametersBucket, rest, &p); isNotFound(err) {
		return "/" + rest, nil
	}
	return rest, nil
}

func (s *Server) getParam(tx store.Tx, name string) (*parameter, error) {
	var p parameter
	if err := tx.Get(ParametersBucket, name, &p); err != nil {
		if isNotFound(err) {
			return nil, awsproto.ClientError("ParameterNotFound", "Parameter %s not found.", name)
		}
		return nil, fmt.Errorf("read parameter %s: %w", name, err)
	}
	return &p, nil
}

func (s *Server) putParameter(k auth.Key, in *ssm.PutParameterInput) (*ssm.PutParameterOutput, error) {
	name := aws.ToString(in.Name)
	if err := mayWrite(k, "ssm:PutParameter", s.paramArn(name)); err != nil {
		return nil, err
	}
	if err := validParamName(name); err != nil {
		return nil, err
	}
	if in.Value == nil {
		return nil, ssmValidation("1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
	}
	value := *in.Value
	if in.Policies != nil {
		return nil, ssmValidation("Policies: parameter policies (Expiration, ExpirationNotification, NoChangeNotification) are not served by this endpoint.")
	}
	dataType := aws.ToString(in.DataType)
	switch dataType {
	case "", "text":
		dataType = "text"
	default:
		return nil, ssmValidation("DataType %q is not served by this endpoint: only text (aws:ec2:image and aws:ssm:integration need EC2 and integrations).", dataType)
	}
	tier := string(in.Tier)
	limit := maxStandardValue
	switch in.Tier {
	case "", types.ParameterTierStandard:
		tier = string(types.ParameterTierStandard)
	case types.ParameterTierAdvanced:
		limit = maxAdvancedValue
	case types.ParameterTierIntelligentTiering:
		tier, limit = string(types.ParameterTierStandard), maxAdvancedValue
		if len(value) > maxStandardValue {
			tier = string(types.ParameterTierAdvanced)
		}
	default:
		return nil, ssmValidation("1 validation error detected: Value '%s' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]", in.Tier)
	}
	if value == "" {
		return nil, ssmValidation("1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(value) > limit {
		return nil, ssmValidation("Standard tier parameters support a maximum parameter value of %d characters (Advanced: %d); this value has %d.", maxStandardValue, maxAdvancedValue, len(value))
	}
	if in.Description != nil && len(*in.Description) > 1024 {
		return nil, ssmValidation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1024")
	}
	if pat := aws.ToString(in.AllowedPattern); pat != "" {
		re, err := regexp.Compile(pat)
		if err != nil || len(pat) > 1024 {
			return nil, ssmValidation("AllowedPattern %q is not a valid regular expression.", pat)
		}
		if loc := re.FindStringIndex(value); loc == nil || loc[0] != 0 || loc[1] != len(value) {
			return nil, awsproto.ClientError("ParameterPatternMismatchException", "Parameter value, cannot be validated against allowedPattern: %s", pat)
		}
	}
	tags, err := ssmTags(in.Tags)
	if err != nil {
		return nil, err
	}
	overwrite := aws.ToBool(in.Overwrite)
	if len(tags) > 0 && overwrite {
		return nil, ssmValidation("Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.")
	}
	keyID := aws.ToString(in.KeyId)
	var out *ssm.PutParameterOutput
	err = s.o.Store.Update(func(tx store.Tx) error {
		var p parameter
		err := tx.Get(ParametersBucket, name, &p)
		exists := err == nil
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("read parameter %s: %w", name, err)
		}
		typ := in.Type
		switch {
		case typ == "" && exists:
			typ = types.ParameterType(p.current().Type)
		case typ == "":
			return ssmValidation("A parameter type is required when you create a parameter.")
		}
		switch typ {
		case types.ParameterTypeString, types.ParameterTypeStringList:
			if keyID != "" {
				return ssmValidation("KeyId is required for SecureString type parameter only.")
			}
		case types.ParameterTypeSecureString:
			switch keyID {
			case "", DefaultSSMKey, "aws/ssm":
				keyID = DefaultSSMKey
			default:
				return awsproto.ClientError("InvalidKeyId", "KeyId %s is not served: this endpoint seals SecureString values with its master key, which stands for %s; omit KeyId or name %s.", keyID, DefaultSSMKey, DefaultSSMKey)
			}
		default:
			return awsproto.ClientError("UnsupportedParameterType", "Parameter type %q is not supported: String, StringList or SecureString.", typ)
		}
		if exists && !overwrite {
			return awsproto.ClientError("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
		}
		if !exists {
			p = parameter{Name: name, Tags: tags}
		}
		version := int64(1)
		if exists {
			version = p.current().Version + 1
		}
		sealed, err := s.o.Sealer.SealValue(aadParam(name, version), []byte(value))
		if err != nil {
			return fmt.Errorf("seal parameter %s: %w", name, err)
		}
		v := paramVersion{Version: version, Type: string(typ), Sealed: sealed, Description: aws.ToString(in.Description),
			AllowedPattern: aws.ToString(in.AllowedPattern), Tier: tier, DataType: dataType, KeyID: keyID,
			Modified: s.o.Now().UTC(), ModifiedUser: s.userArn(k)}
		p.Versions = append(p.Versions, v)
		if len(p.Versions) > maxParamVersions {
			p.Versions = p.Versions[len(p.Versions)-maxParamVersions:]
		}
		out = &ssm.PutParameterOutput{Version: version, Tier: types.ParameterTier(tier)}
		return tx.Put(ParametersBucket, name, p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// userArn is what LastModifiedUser says of the caller.
func (s *Server) userArn(k auth.Key) string {
	if k.RoleArn != "" {
		return k.RoleArn
	}
	return fmt.Sprintf("arn:aws:iam::%s:user/%s", s.o.AccountID, k.AccessKeyID)
}

// version picks the version a selector names: "" the current one, a
// number that version. Labels are not served.
func (p *parameter) version(selector string) (*paramVersion, error) {
	if selector == "" {
		return p.current(), nil
	}
	n, err := strconv.ParseInt(selector, 10, 64)
	if err != nil {
		return nil, ssmValidation("Selector :%s of parameter %s: parameter labels (LabelParameterVersion) are not served by this endpoint; select a version by number.", selector, p.Name)
	}
	for i := range p.Versions {
		if p.Versions[i].Version == n {
			return &p.Versions[i], nil
		}
	}
	return nil, awsproto.ClientError("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", n, p.Name)
}

// value is one version's value as a response shows it: in clear, or for a
// SecureString without decryption its sealed form (as AWS shows the KMS
// ciphertext).
func (s *Server) value(name string, v *paramVersion, decrypt bool) (string, error) {
	if v.Type == string(types.ParameterTypeSecureString) && !decrypt {
		return base64.StdEncoding.EncodeToString(v.Sealed), nil
	}
	plain, err := s.o.Sealer.OpenValue(aadParam(name, v.Version), v.Sealed)
	if err != nil {
		return "", fmt.Errorf("parameter %s version %d: %w", name, v.Version, err)
	}
	return string(plain), nil
}

func (s *Server) parameterOut(p *parameter, v *paramVersion, selector string, decrypt bool) (types.Parameter, error) {
	val, err := s.value(p.Name, v, decrypt)
	if err != nil {
		return types.Parameter{}, err
	}
	out := types.Parameter{Name: aws.String(p.Name), Type: types.ParameterType(v.Type), Value: aws.String(val),
		Version: v.Version, LastModifiedDate: aws.Time(v.Modified), ARN: aws.String(s.paramArn(p.Name)),
		DataType: aws.String(v.DataType)}
	if selector != "" {
		out.Selector = aws.String(":" + selector)
	}
	return out, nil
}

// lookup reads the parameter and version that nameSel names and checks
// that k may read it.
func (s *Server) lookup(tx store.Tx, k auth.Key, action, nameSel string, decrypt bool) (types.Parameter, error) {
	n, sel := splitSelector(nameSel)
	name, err := s.resolveName(tx, n)
	if err != nil {
		return types.Parameter{}, err
	}
	if err := s.mayRead(k, action, s.paramArn(name)); err != nil {
		return types.Parameter{}, err
	}
	p, err := s.getParam(tx, name)
	if err != nil {
		return types.Parameter{}, err
	}
	v, err := p.version(sel)
	if err != nil {
		return types.Parameter{}, err
	}
	return s.parameterOut(p, v, sel, decrypt)
}

func (s *Server) getParameter(k auth.Key, in *ssm.GetParameterInput) (*ssm.GetParameterOutput, error) {
	var out *ssm.GetParameterOutput
	err := s.o.Store.View(func(tx store.Tx) error {
		p, err := s.lookup(tx, k, "ssm:GetParameter", aws.ToString(in.Name), aws.ToBool(in.WithDecryption))
		out = &ssm.GetParameterOutput{Parameter: &p}
		return err
	})
	return out, err
}

func (s *Server) getParameters(k auth.Key, in *ssm.GetParametersInput) (*ssm.GetParametersOutput, error) {
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, ssmValidation("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	out := &ssm.GetParametersOutput{InvalidParameters: []string{}, Parameters: []types.Parameter{}}
	err := s.o.Store.View(func(tx store.Tx) error {
		out.InvalidParameters, out.Parameters = []string{}, []types.Parameter{}
		for _, n := range slices.Compact(slices.Clone(in.Names)) {
			p, err := s.lookup(tx, k, "ssm:GetParameters", n, aws.ToBool(in.WithDecryption))
			var ae *awsproto.Error
			if errors.As(err, &ae) && (ae.Type == "ParameterNotFound" || ae.Type == "ParameterVersionNotFound") {
				out.InvalidParameters = append(out.InvalidParameters, n)
				continue
			}
			if err != nil {
				return err
			}
			out.Parameters = append(out.Parameters, p)
		}
		return nil
	})
	return out, err
}

func (s *Server) getParametersByPath(k auth.Key, in *ssm.GetParametersByPathInput) (*ssm.GetParametersByPathOutput, error) {
	path := aws.ToString(in.Path)
	if !strings.HasPrefix(path, "/") || (path != "/" && validParamName(strings.TrimSuffix(path, "/")) != nil) {
		return nil, ssmValidation("The parameter path %q is not valid: it must begin with / and name a hierarchy (e.g. /app/prod).", path)
	}
	if len(in.ParameterFilters) > 0 {
		return nil, ssmValidation("ParameterFilters of GetParametersByPath are not served by this endpoint; filter with DescribeParameters.")
	}
	limit, err := maxResults(in.MaxResults, 10, 10, "ValidationException")
	if err != nil {
		return nil, err
	}
	from, err := fromToken(in.NextToken, "InvalidNextToken")
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(path, "/") + "/"
	recursive := aws.ToBool(in.Recursive)
	var out *ssm.GetParametersByPathOutput
	err = s.o.Store.View(func(tx store.Tx) error {
		out = &ssm.GetParametersByPathOutput{Parameters: []types.Parameter{}}
		var found []parameter
		err := tx.Scan(ParametersBucket, store.Range{Prefix: prefix, From: from}, func(key string, raw []byte) error {
			if !recursive && strings.Contains(key[len(prefix):], "/") {
				return nil
			}
			if len(found) == limit {
				out.NextToken = pageToken(key)
				return store.ErrStopScan
			}
			var p parameter
			if err := jsonUnmarshal(raw, &p); err != nil {
				return err
			}
			found = append(found, p)
			return nil
		})
		if err != nil {
			return fmt.Errorf("scan parameters: %w", err)
		}
		for i := range found {
			p := &found[i]
			if err := s.mayRead(k, "ssm:GetParametersByPath", s.paramArn(p.Name)); err != nil {
				return err
			}
			po, err := s.parameterOut(p, p.current(), "", aws.ToBool(in.WithDecryption))
			if err != nil {
				return err
			}
			out.Parameters = append(out.Parameters, po)
		}
		return nil
	})
	return out, err
}

func (s *Server) getParameterHistory(k auth.Key, in *ssm.GetParameterHistoryInput) (*ssm.GetParameterHistoryOutput, error) {
	limit, err := maxResults(in.MaxResults, 50, 50, "ValidationException")
	if err != nil {
		return nil, err
	}
	from, err := fromToken(in.NextToken, "InvalidNextToken")
	if err != nil {
		return nil, err
	}
	start := 0
	if from != "" {
		if start, err = strconv.Atoi(from); err != nil || start < 0 {
			return nil, awsproto.ClientError("InvalidNextToken", "The NextToken is not valid.")
		}
	}
	var out *ssm.GetParameterHistoryOutput
	err = s.o.Store.View(func(tx store.Tx) error {
		name, err := s.resolveName(tx, aws.ToString(in.Name))
		if err != nil {
			return err
		}
		if err := mayWrite(k, "ssm:GetParameterHistory", s.paramArn(name)); err != nil {
			return err
		}
		p, err := s.getParam(tx, name)
		if err != nil {
			return err
		}
		out = &ssm.GetParameterHistoryOutput{Parameters: []types.ParameterHistory{}}
		for i := start; i < len(p.Versions); i++ {
			if len(out.Parameters) == limit {
				out.NextToken = pageToken(strconv.Itoa(i))
				break
			}
			v := &p.Versions[i]
			val, err := s.value(name, v, aws.ToBool(in.WithDecryption))
			if err != nil {
				return err
			}
			out.Parameters = append(out.Parameters, types.ParameterHistory{Name: aws.String(name), Type: types.ParameterType(v.Type),
				Value: aws.String(val), Version: v.Version, LastModifiedDate: aws.Time(v.Modified), LastModifiedUser: aws.String(v.ModifiedUser),
				Description: optional(v.Description), AllowedPattern: optional(v.AllowedPattern), KeyId: optional(v.KeyID),
				Tier: types.ParameterTier(v.Tier), DataType: aws.String(v.DataType), Labels: []string{}, Policies: []types.ParameterInlinePolicy{}})
		}
		return nil
	})
	return out, err
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
