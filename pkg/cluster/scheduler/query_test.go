package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func queryInstance() *Instance {
	return &Instance{
		Arn: "arn:i1", ID: "i1", EC2InstanceID: "i-0abc",
		Attributes: map[string]string{
			"ecs.availability-zone": "us-east-1a",
			"ecs.instance-type":     "t2.micro",
			"stack":                 "prod",
			"weight":                "10",
		},
		AgentConnected: true,
		AgentVersion:   "1.10.2",
		RegisteredAt:   time.Date(2018, 6, 18, 22, 28, 28, 0, time.UTC),
		RunningTasks:   3,
		Groups:         map[string]int{"service:web": 2, "family:db": 1, "family:gone": 0},
	}
}

func TestQueryOperatorsAndSubjects(t *testing.T) {
	cases := []struct {
		expr string
		want bool
	}{
		// attribute: every operator
		{"attribute:ecs.instance-type == t2.micro", true},
		{"attribute:ecs.instance-type == 't2.micro'", true},
		{"attribute:ecs.instance-type != t2.micro", false},
		{"attribute:ecs.instance-type != m5.large", true},
		{"attribute:missing != x", true},
		{"attribute:missing == x", false},
		{"attribute:weight > 9", true},
		{"attribute:weight > 10", false},
		{"attribute:weight >= 10", true},
		{"attribute:weight < 10", false},
		{"attribute:weight <= 10", true},
		{"attribute:weight < 100", true}, // numeric, not string, order
		{"attribute:stack exists", true},
		{"attribute:missing exists", false},
		{"attribute:missing !exists", true},
		{"attribute:stack !exists", false},
		{"attribute:ecs.instance-type in [t2.micro, t2.medium]", true},
		{"attribute:ecs.instance-type in ['m5.large', 'c5.xlarge']", false},
		{"attribute:ecs.instance-type !in [m5.large, c5.xlarge]", true},
		{"attribute:ecs.instance-type not_in [t2.micro]", false},
		{"attribute:ecs.instance-type =~ t2.*", true},
		{"attribute:ecs.instance-type =~ ^m5", false},
		{"attribute:ecs.instance-type !~ ^m5", true},
		{"attribute:ecs.instance-type !~ micro", false},
		// the other subjects
		{"ec2InstanceId == i-0abc", true},
		{"ec2InstanceId in [i-1, i-0abc]", true},
		{"agentConnected == true", true},
		{"agentConnected != true", false},
		{"agentVersion >= 1.9.0", true},  // 1.10 > 1.9 as versions
		{"agentVersion < 1.10.10", true}, // numeric components
		{"agentVersion == 1.10.2", true},
		{"registeredAt < 2018-06-19", true},
		{"registeredAt > 2018-06-18", true},
		{"registeredAt == 2018-06-18T22:28:28Z", true},
		{"registeredAt >= 2018-06-19T00:28:28+02:00", true},
		{"registeredAt < 2018-06-18T22:28:28", false},
		{"runningTasksCount == 3", true},
		{"runningTasksCount > 3", false},
		{"runningTasksCount <= 3", true},
		{"task:group == service:web", true},
		{"task:group == family:gone", false},
		{"task:group != service:api", true},
		{"task:group in [service:api, family:db]", true},
		{"task:group exists", true},
		{"task:group =~ ^service:", true},
		// combinators and precedence
		{"attribute:stack == prod and runningTasksCount > 1", true},
		{"attribute:stack == prod && runningTasksCount > 5", false},
		{"attribute:stack == dev or runningTasksCount > 1", true},
		{"attribute:stack == dev || runningTasksCount > 5", false},
		{"not attribute:stack == dev", true},
		{"!(attribute:stack == prod)", false},
		{"attribute:stack == dev or attribute:stack == prod and runningTasksCount == 0", false}, // and binds tighter
		{"(attribute:stack == dev or attribute:stack == prod) and runningTasksCount == 3", true},
		{"NOT attribute:stack == dev AND agentConnected == true", true},
	}
	in := queryInstance()
	for _, c := range cases {
		e, err := Parse(c.expr)
		if err != nil {
			t.Errorf("Parse(%q) = %v, want success", c.expr, err)
			continue
		}
		if got := e.Eval(in); got != c.want {
			t.Errorf("%q on the instance = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestQueryMalformed(t *testing.T) {
	cases := []struct {
		expr string
		pos  int    // 1-based position the error names
		frag string // part of the message
	}{
		{"", 1, "empty"},
		{"attribute:stack ==", 19, "expected a value"},
		{"attribute:stack prod", 17, "expected an operator"},
		{"colour == red", 1, "unknown subject"},
		{"attribute: == x", 1, "needs a name"},
		{"(attribute:stack == prod", 25, "expected )"},
		{"attribute:stack == prod)", 24, "expected and, or"},
		{"attribute:stack in prod", 20, "expected ["},
		{"attribute:stack in [a b]", 23, "expected , or ]"},
		{"attribute:stack in [a,", 23, "expected a list value"},
		{"attribute:stack == 'prod", 20, "unterminated"},
		{"attribute:stack =~ 'a('", 20, "regular expression"},
		{"registeredAt > yesterday", 16, "not a date"},
		{"runningTasksCount > many", 21, "not a number"},
		{"agentConnected == maybe", 19, "true or false"},
		{"attribute:a == b and", 21, "expected a subject"},
		{"attribute:a == b or or", 21, "unknown subject"},
		{"attribute:a == b # c", 18, "expected and, or"},
		{"attribute:a == b \u00e9", 18, "unexpected character"},
	}
	for _, c := range cases {
		_, err := Parse(c.expr)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", c.expr, err)
			continue
		}
		if se.Pos+1 != c.pos || !strings.Contains(se.Error(), c.frag) {
			t.Errorf("Parse(%q) = %q at %d, want position %d and %q", c.expr, se.Error(), se.Pos+1, c.pos, c.frag)
		}
	}
}
