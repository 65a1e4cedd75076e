package records

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestServiceEventsNewestFirstAtMost100(t *testing.T) {
	rec := &Service{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 150; i++ {
		rec.AddEvent(fmt.Sprintf("event %d", i), start.Add(time.Duration(i)*time.Second))
	}
	evs := rec.Service.Events
	if len(evs) != MaxServiceEvents || aws.ToString(evs[0].Message) != "event 149" || aws.ToString(evs[99].Message) != "event 50" {
		t.Fatalf("%d events, first %q, last %q; want 100, event 149 .. event 50", len(evs), aws.ToString(evs[0].Message), aws.ToString(evs[len(evs)-1].Message))
	}
}
