package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ECSEpochTime is a timestamp as the ECS and TCS JSON protocols send it:
// seconds since the epoch as a JSON number. The SDK's ECS input structs hold
// *time.Time, which encoding/json cannot read from a number, so request
// structs that carry timestamps shadow those members with this type.
type ECSEpochTime struct {
	time.Time
}

// UnmarshalJSON reads epoch seconds (a JSON number, fractions allowed).
func (t *ECSEpochTime) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("timestamp must be epoch seconds: %w", err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return fmt.Errorf("timestamp %v out of range", f)
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}

// MarshalJSON writes epoch seconds with millisecond precision.
func (t ECSEpochTime) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)), nil
}

// Ptr returns the time as the SDK's *time.Time, nil for a nil receiver.
func (t *ECSEpochTime) Ptr() *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time
	return &v
}
