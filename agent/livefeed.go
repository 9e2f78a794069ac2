package agent

import (
	"sync"

	"github.com/vigil-cctv/vigil/agent/media"
)

// Live feed tuning.
const (
	// liveQueue is how many access units may wait for one relay (about
	// 10 s at 25 fps); beyond that the relay skips to the next keyframe.
	liveQueue = 256
	// liveGOPMax bounds the access units kept since the last keyframe, for
	// a relay that starts now: a camera whose keyframes are further apart
	// makes a new viewer wait for the next one instead.
	liveGOPMax = 300
)

// liveFeed hands a camera stream's access units to the live relays that
// central asked for. It keeps the units since the last keyframe, so that
// a new viewer sees a picture at once instead of waiting for the next
// keyframe. Publishing never blocks the RTSP reader.
type liveFeed struct {
	mu   sync.Mutex
	gop  []*media.AccessUnit // from the last keyframe; nil when unknown
	subs map[*liveSub]struct{}
}

// liveSub is one relay's queue.
type liveSub struct {
	ch       chan *media.AccessUnit
	dropping bool // skipping to the next keyframe after an overflow
}

func newLiveFeed() *liveFeed { return &liveFeed{subs: map[*liveSub]struct{}{}} }

// publish runs on the RTSP reader goroutine. Access units are shared, never
// modified, by the recorder and every relay.
func (f *liveFeed) publish(au *media.AccessUnit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case au.Keyframe:
		clear(f.gop)
		f.gop = append(f.gop[:0], au)
	case f.gop != nil && len(f.gop) < liveGOPMax:
		f.gop = append(f.gop, au)
	default:
		f.gop = nil
	}
	for s := range f.subs {
		s.offer(au)
	}
}

func (s *liveSub) offer(au *media.AccessUnit) {
	if s.dropping {
		if !au.Keyframe {
			return
		}
		s.dropping = false
	}
	select {
	case s.ch <- au:
	default:
		// A relay that cannot keep up misses frames until the next
		// keyframe: what it sends stays decodable.
		s.dropping = true
	}
}

// streamEnd forgets the units kept: the next session starts afresh.
func (f *liveFeed) streamEnd() {
	f.mu.Lock()
	clear(f.gop)
	f.gop = nil
	f.mu.Unlock()
}

// subscribe starts a relay's queue with the units since the last keyframe.
func (f *liveFeed) subscribe() (*liveSub, func()) {
	s := &liveSub{ch: make(chan *media.AccessUnit, liveQueue), dropping: true}
	f.mu.Lock()
	for _, au := range f.gop {
		s.offer(au)
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s, func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}
}

// viewers is how many relays read the feed now.
func (f *liveFeed) viewers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
