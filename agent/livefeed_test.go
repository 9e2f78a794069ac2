package agent

import (
	"testing"

	"github.com/vigil-cctv/vigil/agent/media"
)

func unit(n int, key bool) *media.AccessUnit {
	return &media.AccessUnit{DTS: int64(n), Keyframe: key}
}

func drain(s *liveSub) []int64 {
	var out []int64
	for {
		select {
		case au := <-s.ch:
			out = append(out, au.DTS)
		default:
			return out
		}
	}
}

func TestLiveFeedStartsAtTheLastKeyframe(t *testing.T) {
	f := newLiveFeed()
	f.publish(unit(1, false)) // before any keyframe: undecodable, not kept
	f.publish(unit(2, true))
	f.publish(unit(3, false))
	s, stop := f.subscribe()
	f.publish(unit(4, false))
	if got := drain(s); len(got) != 3 || got[0] != 2 || got[2] != 4 {
		t.Fatalf("new relay got %v, want 2 3 4 (from the last keyframe)", got)
	}
	f.publish(unit(5, true))
	f.publish(unit(6, false))
	late, stopLate := f.subscribe()
	if got := drain(late); len(got) != 2 || got[0] != 5 {
		t.Fatalf("late relay got %v, want 5 6", got)
	}
	if f.viewers() != 2 {
		t.Fatalf("%d relays", f.viewers())
	}
	stop()
	stopLate()
	if f.viewers() != 0 {
		t.Fatal("relays not forgotten")
	}
	// A new session of the camera forgets the kept units.
	f.streamEnd()
	s, stop = f.subscribe()
	defer stop()
	f.publish(unit(7, false))
	if got := drain(s); len(got) != 0 {
		t.Fatalf("after the stream ended, a relay got %v before a keyframe", got)
	}
}

func TestLiveFeedOverflowSkipsToKeyframe(t *testing.T) {
	f := newLiveFeed()
	f.publish(unit(0, true))
	s, stop := f.subscribe()
	defer stop()
	for n := 1; n <= liveQueue+10; n++ {
		f.publish(unit(n, false))
	}
	got := drain(s)
	if len(got) != liveQueue {
		t.Fatalf("queue held %d units, want %d", len(got), liveQueue)
	}
	f.publish(unit(1000, false))
	if got := drain(s); len(got) != 0 {
		t.Fatalf("after an overflow a relay got %v before a keyframe", got)
	}
	f.publish(unit(1001, true))
	if got := drain(s); len(got) != 1 || got[0] != 1001 {
		t.Fatalf("after the overflow: %v, want the keyframe", got)
	}
	// A camera with keyframes further apart than the kept bound makes a
	// new relay wait for the next keyframe instead of a broken start.
	g := newLiveFeed()
	g.publish(unit(0, true))
	for n := 1; n <= liveGOPMax+1; n++ {
		g.publish(unit(n, false))
	}
	s2, stop2 := g.subscribe()
	defer stop2()
	if got := drain(s2); len(got) != 0 {
		t.Fatalf("kept %d units past the bound", len(got))
	}
}
