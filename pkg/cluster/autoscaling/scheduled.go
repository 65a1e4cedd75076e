package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"

	"github.com/berth-dev/berth/pkg/cluster/store"
)

// schedule is a parsed Schedule: at(...), rate(...) or cron(...).
type schedule struct {
	at   time.Time     // at(): in the action's time zone
	rate time.Duration // rate()
	cron []cronField   // cron(): minutes, hours, day of month, month, day of week, year
}

// cronField is the values one cron field allows (nil: any, "*" or "?").
type cronField map[int]bool

var cronRanges = [6][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {1, 7}, {1970, 2199}}

var cronNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10,
	"NOV": 11, "DEC": 12, "SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}

// parseSchedule reads AWS's schedule expressions; loc is the time zone of
// at() and cron().
func parseSchedule(expr string, loc *time.Location) (schedule, error) {
	bad := func(format string, args ...any) (schedule, error) {
		return schedule{}, validation("Schedule %q: %s", expr, fmt.Sprintf(format, args...))
	}
	switch {
	case strings.HasPrefix(expr, "at(") && strings.HasSuffix(expr, ")"):
		t, err := time.ParseInLocation("2006-01-02T15:04:05", expr[3:len(expr)-1], loc)
		if err != nil {
			return bad("at() takes yyyy-mm-ddThh:mm:ss")
		}
		return schedule{at: t}, nil
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		f := strings.Fields(expr[5 : len(expr)-1])
		if len(f) != 2 {
			return bad("rate() takes a value and a unit")
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 1 {
			return bad("rate() takes a positive whole number")
		}
		units := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour,
			"day": 24 * time.Hour, "days": 24 * time.Hour}
		u, ok := units[f[1]]
		if !ok || (n == 1) != !strings.HasSuffix(f[1], "s") {
			return bad("rate() units are minute, minutes, hour, hours, day, days (singular for 1)")
		}
		return schedule{rate: time.Duration(n) * u}, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		f := strings.Fields(expr[5 : len(expr)-1])
		if len(f) != 6 {
			return bad("cron() takes six fields: minutes hours day-of-month month day-of-week year")
		}
		if (f[2] == "?") == (f[4] == "?") {
			return bad("one of day-of-month and day-of-week must be ?, not both")
		}
		sc := schedule{cron: make([]cronField, 6)}
		for i, field := range f {
			cf, err := parseCronField(field, cronRanges[i][0], cronRanges[i][1])
			if err != nil {
				return bad("field %d (%s): %v", i+1, field, err)
			}
			sc.cron[i] = cf
		}
		return sc, nil
	}
	return bad("it must be at(...), rate(...) or cron(...)")
}

func parseCronField(field string, lo, hi int) (cronField, error) {
	if field == "*" || field == "?" {
		return nil, nil
	}
	if strings.ContainsAny(field, "LW#") {
		return nil, errors.New("L, W and # are not supported by this endpoint")
	}
	num := func(s string) (int, error) {
		if v, ok := cronNames[strings.ToUpper(s)]; ok {
			return v, nil
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("%q is not from %d to %d", s, lo, hi)
		}
		return v, nil
	}
	out := cronField{}
	for _, part := range strings.Split(field, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			var err error
			if step, err = strconv.Atoi(stepText); err != nil || step < 1 {
				return nil, fmt.Errorf("step %q is not a positive number", stepText)
			}
		}
		from, to := lo, hi
		switch a, b, isRange := strings.Cut(rng, "-"); {
		case rng == "*":
		case isRange:
			var err error
			if from, err = num(a); err != nil {
				return nil, err
			}
			if to, err = num(b); err != nil {
				return nil, err
			}
		default:
			v, err := num(rng)
			if err != nil {
				return nil, err
			}
			from = v
			if !hasStep {
				to = v
			}
		}
		if from > to {
			return nil, fmt.Errorf("range %s runs backwards", rng)
		}
		for v := from; v <= to; v += step {
			out[v] = true
		}
	}
	return out, nil
}

func (f cronField) has(v int) bool { return f == nil || f[v] }

// matches reports whether the minute t (in the schedule's zone) is one
// the cron expression names.
func (sc schedule) matches(t time.Time) bool {
	c := sc.cron
	return c[0].has(t.Minute()) && c[1].has(t.Hour()) && c[2].has(t.Day()) && c[3].has(int(t.Month())) &&
		c[4].has(int(t.Weekday())+1) && c[5].has(t.Year())
}

// catchUp is how far back a scheduler that was not running (a leader
// change) still runs a cron minute it missed.
const catchUp = time.Hour

// due reports whether a scheduled action runs at now: its schedule has a
// time in (last run, now] (since its creation or StartTime when it never
// ran), within its StartTime and EndTime.
func due(sc schedule, a *types.ScheduledAction, lastRun int64, loc *time.Location, now time.Time) bool {
	if a.StartTime != nil && now.Before(*a.StartTime) || a.EndTime != nil && now.After(*a.EndTime) {
		return false
	}
	since := aws.ToTime(a.CreationTime).Truncate(time.Minute)
	if a.StartTime != nil && a.StartTime.After(since) {
		since = *a.StartTime
	}
	switch {
	case !sc.at.IsZero():
		return lastRun == 0 && !sc.at.After(now) && !sc.at.Before(since)
	case sc.rate > 0:
		base := since
		if lastRun > 0 {
			base = time.Unix(lastRun, 0)
		}
		return !now.Before(base.Add(sc.rate))
	}
	from := now.Add(-catchUp)
	if lastRun > 0 && time.Unix(lastRun, 0).After(from) {
		from = time.Unix(lastRun, 0)
	}
	if since.After(from) {
		from = since.Add(-time.Minute)
	}
	for m := now.Truncate(time.Minute); m.After(from); m = m.Add(-time.Minute) {
		if sc.matches(m.In(loc)) {
			return true
		}
	}
	return false
}

func location(tz *string) (*time.Location, error) {
	name := aws.ToString(tz)
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, validation("Timezone %q is not an IANA time zone (for example America/New_York)", name)
	}
	return loc, nil
}

func putScheduledAction(s *Server, _ context.Context, in *aas.PutScheduledActionInput) (*aas.PutScheduledActionOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.ScheduledActionName)
	if name == "" || len(name) > 256 || strings.ContainsAny(name, ":/") {
		return nil, validation("ScheduledActionName must be 1 to 256 characters without ':' or '/', not %q", name)
	}
	now := s.o.Now()
	err = s.o.Store.Update(func(tx store.Tx) error {
		if _, err := mustTarget(tx, r.Resource); err != nil {
			return err
		}
		key := childKey(r.Resource, name)
		var old Scheduled
		err = tx.Get(ScheduledBucket, key, &old)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read scheduled action: %w", err)
		}
		a := types.ScheduledAction{ScheduledActionName: aws.String(name), ResourceId: aws.String(r.Resource),
			ScalableDimension: r.Dimension, ServiceNamespace: r.Namespace, CreationTime: aws.Time(now),
			ScheduledActionARN: aws.String(s.scheduledARN(newID(), r.Resource, name))}
		if exists {
			a = old.Action // an update changes only what it names
		} else {
			n := 0
			if err := children(tx, ScheduledBucket, r.Resource, func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
			if n >= maxScheduledPerTarget {
				return limitExceeded("A scalable target may have at most %d scheduled actions", maxScheduledPerTarget)
			}
			if in.Schedule == nil {
				return validation("Schedule is required for a new scheduled action")
			}
			if in.ScalableTargetAction == nil {
				return validation("ScalableTargetAction is required for a new scheduled action")
			}
		}
		if in.Schedule != nil {
			a.Schedule = in.Schedule
		}
		if in.Timezone != nil {
			a.Timezone = in.Timezone
		}
		if in.StartTime != nil {
			a.StartTime = in.StartTime
		}
		if in.EndTime != nil {
			a.EndTime = in.EndTime
		}
		if in.ScalableTargetAction != nil {
			a.ScalableTargetAction = in.ScalableTargetAction
		}
		loc, err := location(a.Timezone)
		if err != nil {
			return err
		}
		if _, err := parseSchedule(aws.ToString(a.Schedule), loc); err != nil {
			return err
		}
		sta := a.ScalableTargetAction
		if sta.MinCapacity == nil && sta.MaxCapacity == nil {
			return validation("ScalableTargetAction needs MinCapacity, MaxCapacity or both")
		}
		if sta.MinCapacity != nil && sta.MaxCapacity != nil && *sta.MinCapacity > *sta.MaxCapacity {
			return validation("ScalableTargetAction: MinCapacity cannot be greater than MaxCapacity")
		}
		if a.StartTime != nil && a.EndTime != nil && !a.StartTime.Before(*a.EndTime) {
			return validation("StartTime must be before EndTime")
		}
		rec := Scheduled{Action: a}
		if exists && aws.ToString(old.Action.Schedule) == aws.ToString(a.Schedule) {
			rec.LastRun = old.LastRun
		}
		return tx.Put(ScheduledBucket, key, &rec)
	})
	if err != nil {
		return nil, err
	}
	return &aas.PutScheduledActionOutput{}, nil
}

func describeScheduledActions(s *Server, _ context.Context, in *aas.DescribeScheduledActionsInput) (*aas.DescribeScheduledActionsOutput, error) {
	r, err := checkRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	var all []types.ScheduledAction
	err = s.o.Store.View(func(tx store.Tx) error {
		all = nil
		prefix := ""
		if r.Resource != "" {
			prefix = r.Resource + "#"
		}
		return store.ForEach(tx, ScheduledBucket, prefix, func(k string, raw []byte) error {
			sa, err := decode[Scheduled](raw)
			if err != nil {
				return fmt.Errorf("scheduled action %s: %w", k, err)
			}
			if len(in.ScheduledActionNames) == 0 || slices.Contains(in.ScheduledActionNames, aws.ToString(sa.Action.ScheduledActionName)) {
				all = append(all, sa.Action)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	items, next, err := page(all, func(a types.ScheduledAction) string {
		return childKey(aws.ToString(a.ResourceId), aws.ToString(a.ScheduledActionName))
	}, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &aas.DescribeScheduledActionsOutput{ScheduledActions: nonNil(items), NextToken: next}, nil
}

func deleteScheduledAction(s *Server, _ context.Context, in *aas.DeleteScheduledActionInput) (*aas.DeleteScheduledActionOutput, error) {
	r, err := requireRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.ScheduledActionName)
	err = s.o.Store.Update(func(tx store.Tx) error {
		var sa Scheduled
		if err := tx.Get(ScheduledBucket, childKey(r.Resource, name), &sa); errors.Is(err, store.ErrNotFound) {
			return notFound("No scheduled action found for service namespace: ecs, resource ID: %s, scalable dimension: ecs:service:DesiredCount, scheduled action name: %s", r.Resource, name)
		} else if err != nil {
			return fmt.Errorf("read scheduled action: %w", err)
		}
		return tx.Delete(ScheduledBucket, childKey(r.Resource, name))
	})
	if err != nil {
		return nil, err
	}
	return &aas.DeleteScheduledActionOutput{}, nil
}

func describeScalingActivities(s *Server, _ context.Context, in *aas.DescribeScalingActivitiesInput) (*aas.DescribeScalingActivitiesOutput, error) {
	r, err := checkRef(in.ServiceNamespace, in.ResourceId, in.ScalableDimension)
	if err != nil {
		return nil, err
	}
	var all []types.ScalingActivity
	err = s.o.Store.View(func(tx store.Tx) error {
		all = nil
		prefix := ""
		if r.Resource != "" {
			prefix = r.Resource + "#"
		}
		return store.ForEach(tx, ActivitiesBucket, prefix, func(k string, raw []byte) error {
			act, err := decode[types.ScalingActivity](raw)
			if err != nil {
				return fmt.Errorf("scaling activity %s: %w", k, err)
			}
			if len(act.NotScaledReasons) > 0 && !aws.ToBool(in.IncludeNotScaledActivities) {
				return nil
			}
			all = append(all, *act)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Newest first, as AWS lists them (keys are in the order of writing).
	slices.Reverse(all)
	items, next, err := pageIndex(all, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	return &aas.DescribeScalingActivitiesOutput{ScalingActivities: nonNil(items), NextToken: next}, nil
}

// pageIndex pages by position (activities have no stable name order).
func pageIndex[T any](items []T, tok *string, maxResults *int32) ([]T, *string, error) {
	limit, err := pageLimit(maxResults)
	if err != nil {
		return nil, nil, err
	}
	start := 0
	if tok != nil {
		n, err := strconv.Atoi(*tok)
		if err != nil || n < 0 || n > len(items) {
			return nil, nil, invalidToken("Invalid token")
		}
		start = n
	}
	end := min(len(items), start+limit)
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return items[start:end], next, nil
}

// RunScheduled runs the scheduled actions that are due at the clock's
// time: each sets its target's minimum and maximum capacity and moves the
// service's desired count into the new range, with its activity and its
// last run in one transaction (so a leader change or a restart runs it
// once). It returns how many ran.
func (s *Server) RunScheduled() (int, error) {
	now := s.o.Now()
	var keys []string
	err := s.o.Store.View(func(tx store.Tx) error {
		keys = nil
		return store.ForEach(tx, ScheduledBucket, "", func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("scheduled actions: %w", err)
	}
	ran := 0
	for _, key := range keys {
		did, wake, err := s.runScheduled(key, now)
		if err != nil {
			return ran, fmt.Errorf("scheduled action %s: %w", key, err)
		}
		if did {
			ran++
		}
		if wake && s.o.Services != nil {
			s.o.Services.Wake()
		}
	}
	return ran, nil
}

func (s *Server) runScheduled(key string, now time.Time) (did, wake bool, err error) {
	err = s.o.Store.Update(func(tx store.Tx) error {
		did, wake = false, false
		var sa Scheduled
		if err := tx.Get(ScheduledBucket, key, &sa); errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		a := &sa.Action
		loc, err := location(a.Timezone)
		if err != nil {
			return err
		}
		sc, err := parseSchedule(aws.ToString(a.Schedule), loc)
		if err != nil || !due(sc, a, sa.LastRun, loc, now) {
			return err
		}
		resource := aws.ToString(a.ResourceId)
		t, ok, err := getTarget(tx, resource)
		if err != nil || !ok {
			return err
		}
		sa.LastRun = now.Unix()
		if err := tx.Put(ScheduledBucket, key, &sa); err != nil {
			return err
		}
		if ss := t.Target.SuspendedState; ss != nil && aws.ToBool(ss.ScheduledScalingSuspended) {
			return nil
		}
		var parts []string
		if v := a.ScalableTargetAction.MinCapacity; v != nil {
			t.Target.MinCapacity = v
			parts = append(parts, fmt.Sprintf("min capacity to %d", *v))
		}
		if v := a.ScalableTargetAction.MaxCapacity; v != nil {
			t.Target.MaxCapacity = v
			parts = append(parts, fmt.Sprintf("max capacity to %d", *v))
		}
		if aws.ToInt32(t.Target.MinCapacity) > aws.ToInt32(t.Target.MaxCapacity) {
			t.Target.MaxCapacity = t.Target.MinCapacity
		}
		if err := tx.Put(TargetsBucket, resource, t); err != nil {
			return err
		}
		what := strings.Join(parts, " and ")
		cause := fmt.Sprintf("scheduled action name %s was triggered", aws.ToString(a.ScheduledActionName))
		if err := addActivity(tx, activity(resource, "Setting "+what, cause, "Successfully set "+what, now)); err != nil {
			return err
		}
		did = true
		wake, err = clampToTarget(tx, t, cause, now)
		return err
	})
	return did, wake, err
}

// RunScheduler runs the scheduled actions every interval until ctx ends
// (the leader runs it); failures go to fail.
func (s *Server) RunScheduler(ctx context.Context, interval time.Duration, fail func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.RunScheduled(); err != nil {
			fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
