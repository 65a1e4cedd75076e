package ecsapi

import (
	"encoding/json"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// The rule of the endpoint is that every member of every operation it
// serves is honoured or refused with the AWS error naming it; none is
// silently dropped. Members() is that rule written down: one entry per
// input member of every routed operation (and the nested members that are
// refused while their parent is honoured). TestEveryMemberHonouredOrRefused
// derives the members from the SDK's input types, so a member a new SDK
// brings fails the test until it is listed here, and proves each entry:
// an honoured member by a request that sets it and a read-back, a refused
// one by the error naming it. docs/ecs-compatibility.md renders the table.

// MemberStatus says what the endpoint does with an input member.
type MemberStatus string

// The statuses of a member.
const (
	// Honoured: the member takes effect as in ECS.
	Honoured MemberStatus = "honoured"
	// HonouredWithDifference: it takes effect; Note says what differs
	// (values refused, a default, what it cannot change on Berth).
	HonouredWithDifference MemberStatus = "honoured with difference"
	// Refused: any value other than an empty or false one is answered
	// with InvalidParameterException (ClientException for task
	// definitions) naming the member; Note says why.
	Refused MemberStatus = "refused"
)

// Member is one input member of an operation.
type Member struct {
	// Name is the ECS member name; nested members are dotted
	// ("networkConfiguration.awsvpcConfiguration.assignPublicIp").
	Name   string
	Status MemberStatus
	Note   string
}

func honoured(name string) Member { return Member{Name: name, Status: Honoured} }

func differs(name, note string) Member {
	return Member{Name: name, Status: HonouredWithDifference, Note: note}
}

func refused(name, note string) Member { return Member{Name: name, Status: Refused, Note: note} }

// refuseMembers answers a request that sets a top-level member the
// operation refuses, before anything else reads the body. A member that is
// absent, null, false, 0, "", [] or {} (or an object of such) is not set:
// clients send empty values for what they do not use.
func refuseMembers(op string, members []Member, body []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil // decodeInput answers a malformed body
	}
	for _, m := range members {
		if m.Status != Refused || strings.Contains(m.Name, ".") {
			continue
		}
		for k, raw := range top {
			if strings.EqualFold(k, m.Name) && !awsproto.EmptyJSON(raw) {
				return refusal(op, m.Name, m.Note)
			}
		}
	}
	return nil
}

// refusal is the error naming a refused member: ClientException for task
// definitions, as ECS answers their members, InvalidParameterException
// otherwise.
func refusal(op, member, why string) error {
	if op == "RegisterTaskDefinition" {
		return clientException("%s is not supported by this endpoint: %s.", member, why)
	}
	return invalidParam("%s is not supported by this endpoint: %s.", member, why)
}
