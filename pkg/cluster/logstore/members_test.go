package logstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

// rawCall sends a Logs request as a client that does no validation of its
// own (the CLI, a script) with the admin key, and returns the error code
// and message ("" when it succeeded).
func rawCall(t *testing.T, url, op, body string) (code, msg string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret},
		req, hex.EncodeToString(sum[:]), Service, testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "", ""
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if i := strings.LastIndex(e.Type, "#"); i >= 0 {
		e.Type = e.Type[i+1:]
	}
	return e.Type, e.Message
}

// sdkInputs are the SDK's input shapes of the routed operations.
func sdkInputs() map[string]any {
	return map[string]any{
		"CreateLogGroup": cloudwatchlogs.CreateLogGroupInput{}, "DeleteLogGroup": cloudwatchlogs.DeleteLogGroupInput{},
		"DescribeLogGroups": cloudwatchlogs.DescribeLogGroupsInput{}, "CreateLogStream": cloudwatchlogs.CreateLogStreamInput{},
		"DeleteLogStream": cloudwatchlogs.DeleteLogStreamInput{}, "DescribeLogStreams": cloudwatchlogs.DescribeLogStreamsInput{},
		"PutLogEvents": cloudwatchlogs.PutLogEventsInput{}, "GetLogEvents": cloudwatchlogs.GetLogEventsInput{},
		"FilterLogEvents": cloudwatchlogs.FilterLogEventsInput{}, "PutRetentionPolicy": cloudwatchlogs.PutRetentionPolicyInput{},
		"DeleteRetentionPolicy": cloudwatchlogs.DeleteRetentionPolicyInput{}, "TagResource": cloudwatchlogs.TagResourceInput{},
		"UntagResource": cloudwatchlogs.UntagResourceInput{}, "ListTagsForResource": cloudwatchlogs.ListTagsForResourceInput{},
		"TagLogGroup": cloudwatchlogs.TagLogGroupInput{}, "UntagLogGroup": cloudwatchlogs.UntagLogGroupInput{},
		"ListTagsLogGroup": cloudwatchlogs.ListTagsLogGroupInput{},
	}
}

// sampleJSON is a set (non-empty) value for a member of Go type typ.
func sampleJSON(typ reflect.Type) string {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.String:
		return `"x"`
	case reflect.Bool:
		return "true"
	case reflect.Int32, reflect.Int64:
		return "1"
	case reflect.Map:
		return `{"k":"v"}`
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.String {
			return `["x"]`
		}
		return `[{"timestamp":1,"message":"x"}]`
	case reflect.Struct:
		return `{"keyAttributes":{"Type":"Service"}}`
	}
	return `"x"`
}

// TestEveryMemberListed: every member of every routed operation's SDK
// input shape is in the member table and nothing else is; each refused
// member, when set, is answered with InvalidParameterException naming it;
// no honoured member is refused; a member the operation does not have is
// refused by name. What each honoured member does is proven by the
// operation's own tests (gaps_test.go, logstore_test.go).
func TestEveryMemberListed(t *testing.T) {
	_, url := newStore(t, nil)
	table := members()
	inputs := sdkInputs()
	var routed, sdk []string
	for op := range table {
		routed = append(routed, op)
	}
	for op := range inputs {
		sdk = append(sdk, op)
	}
	slices.Sort(routed)
	slices.Sort(sdk)
	if !slices.Equal(routed, sdk) {
		t.Fatalf("routed operations %v, SDK inputs checked %v", routed, sdk)
	}
	for op, in := range inputs {
		rt := reflect.TypeOf(in)
		listed := map[string]member{}
		for _, m := range table[op] {
			listed[m.name] = m
		}
		for i := range rt.NumField() {
			f := rt.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.ToLower(f.Name[:1]) + f.Name[1:]
			m, ok := listed[name]
			if !ok {
				t.Errorf("%s.%s (in the SDK) is neither honoured nor refused in members()", op, name)
				continue
			}
			delete(listed, name)
			code, msg := rawCall(t, url, op, `{"`+name+`":`+sampleJSON(f.Type)+`}`)
			refusedByName := code == errInvalid && strings.Contains(msg, name) && strings.Contains(msg, "not supported")
			switch {
			case m.why != "" && !refusedByName:
				t.Errorf("%s.%s is listed as refused, but setting it answered %s %q", op, name, code, msg)
			case m.why == "" && refusedByName:
				t.Errorf("%s.%s is listed as honoured, but setting it was refused: %q", op, name, msg)
			}
		}
		for name := range listed {
			t.Errorf("%s.%s is in members() but not in the SDK's input", op, name)
		}
		if code, msg := rawCall(t, url, op, `{"bogusMember":1}`); code != errInvalid || !strings.Contains(msg, "bogusMember") {
			t.Errorf("%s with an unknown member: %s %q, want %s naming it", op, code, msg, errInvalid)
		}
	}
	if code, _ := rawCall(t, url, "PutSubscriptionFilter", `{}`); code != errUnknownOp {
		t.Errorf("an operation not routed: %s, want %s", code, errUnknownOp)
	}
}
