package scheduler

import (
	"reflect"
	"testing"
)

func TestFirstFitPlacesOnFirstInstanceWithRoom(t *testing.T) {
	a := &Instance{Arn: "a", RemainingCPU: 1024, RemainingMemory: 512, UsedTCP: map[int]bool{22: true}}
	b := &Instance{Arn: "b", RemainingCPU: 2048, RemainingMemory: 768}
	ins := []*Instance{a, b}
	d := Demand{CPU: 512, Memory: 256}
	var got []string
	for i := 0; i < 5; i++ {
		idx, misfits := FirstFit(ins, d)
		if idx < 0 {
			got = append(got, "none:"+misfits[0].Reason+","+misfits[1].Reason)
			continue
		}
		got = append(got, ins[idx].Arn)
	}
	want := []string{"a", "a", "b", "b", "b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("placements = %v, want %v", got, want)
	}
	idx, misfits := FirstFit(ins, d)
	if idx != -1 || !reflect.DeepEqual(misfits, []Misfit{{"a", ReasonCPU}, {"b", ReasonMemory}}) {
		t.Fatalf("sixth placement = %d %v, want -1 with CPU and memory misfits", idx, misfits)
	}
}

func TestFitsReasons(t *testing.T) {
	in := &Instance{RemainingCPU: 100, RemainingMemory: 100, UsedTCP: map[int]bool{80: true}, UsedUDP: map[int]bool{53: true}}
	cases := []struct {
		d    Demand
		want string
	}{
		{Demand{CPU: 101}, ReasonCPU},
		{Demand{CPU: 101, Memory: 101}, ReasonCPU},
		{Demand{Memory: 101}, ReasonMemory},
		{Demand{TCPPorts: []int{80}}, ReasonPorts},
		{Demand{UDPPorts: []int{53}}, ReasonUDP},
		{Demand{TCPPorts: []int{53}, UDPPorts: []int{80}}, ""},
		{Demand{CPU: 100, Memory: 100}, ""},
	}
	for _, c := range cases {
		if got := Fits(in, c.d); got != c.want {
			t.Errorf("Fits(%+v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestTakeRelease(t *testing.T) {
	in := &Instance{RemainingCPU: 100, RemainingMemory: 100}
	d := Demand{CPU: 10, Memory: 20, TCPPorts: []int{8080}}
	Take(in, d)
	if in.RemainingCPU != 90 || in.RemainingMemory != 80 || !in.UsedTCP[8080] {
		t.Fatalf("after Take: %+v", in)
	}
	if Fits(in, d) != ReasonPorts {
		t.Fatalf("second task with the same static port fits, want %s", ReasonPorts)
	}
	Release(in, d)
	if in.RemainingCPU != 100 || in.RemainingMemory != 100 || in.UsedTCP[8080] {
		t.Fatalf("after Release: %+v", in)
	}
}
