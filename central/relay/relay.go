// Package relay is central's live video hub. Operators watching the same
// camera share one relay from the district's agent; the relay starts with
// the first viewer and stops when the last one leaves. It turns the
// agent's access units into fragmented MP4 (one fragment per frame, for
// low latency) that browsers play through Media Source Extensions,
// without transcoding, and keeps the fragments since the last keyframe so
// that a new viewer sees a picture at once. When the agent goes away the
// relay tells its viewers and tries again until it returns or nobody
// watches any more.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// Tuning.
const (
	// viewerQueue is how many messages may wait for one viewer; a viewer
	// further behind skips to the next keyframe.
	viewerQueue = 512
	// gopMax bounds the fragments kept since the last keyframe.
	gopMax = 300
	// openTimeout bounds one attempt to start the agent's relay.
	openTimeout = 15 * time.Second
	// stallAfter is how long a live relay may bring no frame before its
	// viewers are told.
	stallAfter = 5 * time.Second
)

// Source is one relay stream from an agent (registry.RelayStream).
type Source interface {
	Recv() (*agentv1.RelayFrame, error)
	Close()
}

// OpenFunc asks a district's agent for a camera's live stream.
type OpenFunc func(ctx context.Context, district, camera string, sub bool) (Source, error)

// Key names one relay: a camera's main or sub stream.
type Key struct {
	District, Camera string
	// Sub is the camera's secondary stream, for wall tiles.
	Sub bool
}

// ID is the camera's "district/camera" name.
func (k Key) ID() string { return k.District + "/" + k.Camera }

// Kind is the kind of a message to a viewer.
type Kind int

// Message kinds.
const (
	// KindStatus: State and Text say how the relay is doing.
	KindStatus Kind = iota
	// KindCodec: the codec of the init segment that follows.
	KindCodec
	// KindInit: an fMP4 init segment (ftyp+moov) in Data; what follows
	// needs a new decoder.
	KindInit
	// KindFragment: one frame as an fMP4 fragment (moof+mdat) in Data.
	KindFragment
	// KindViewers: Users watching the camera now.
	KindViewers
)

// Relay states in status messages.
const (
	StateStarting     = "starting"
	StateLive         = "live"
	StateReconnecting = "reconnecting"
	// StateStalled: the district's stream is open but brings no picture
	// (the camera is down); the view stays open.
	StateStalled = "stalled"
)

// Message is what a viewer receives, in order.
type Message struct {
	Kind  Kind
	State string
	Text  string
	Codec Codec
	Data  []byte
	// Keyframe marks a fragment a decoder can start from.
	Keyframe bool
	// ReceivedUS is when the agent received the frame from the camera
	// (microseconds since the Unix epoch): the latency probe.
	ReceivedUS int64
	Users      []string
}

// Config configures a Hub.
type Config struct {
	Open   OpenFunc
	Logger *slog.Logger
	// RetryMin and RetryMax bound the wait between attempts to start a
	// relay (defaults 500ms and 5s).
	RetryMin, RetryMax time.Duration
}

// Hub holds the relays.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	relays map[Key]*relay
	// watching counts each user's viewers per camera id.
	watching map[string]map[string]int
}

// New makes a hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Open == nil {
		return nil, errors.New("relay: Open is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	return &Hub{cfg: cfg, log: cfg.Logger.With("component", "relay"), relays: map[Key]*relay{}, watching: map[string]map[string]int{}}, nil
}

// Viewer is one person's view of a relay. Messages arrive on C until
// Leave; C is never closed. Dropped is closed when the viewer fell so far
// behind that what it has cannot be decoded any more: the view must end.
type Viewer struct {
	User    string
	C       <-chan Message
	Dropped <-chan struct{}

	ch      chan Message
	dropped chan struct{}
	r       *relay
	lagging bool // skipping fragments to the next keyframe
	left    bool
}

// Join adds a viewer to the camera's relay, starting it if needed.
func (h *Hub) Join(key Key, user string) *Viewer {
	ch := make(chan Message, viewerQueue)
	dropped := make(chan struct{})
	v := &Viewer{User: user, C: ch, ch: ch, Dropped: dropped, dropped: dropped}
	users := func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		r := h.relays[key]
		if r == nil {
			r = h.startRelay(key)
		}
		r.add(v)
		return h.watchLocked(key.ID(), user, 1)
	}()
	h.announce(key.ID(), users)
	return v
}

// Leave removes the viewer; the relay stops with its last viewer.
func (v *Viewer) Leave() {
	r := v.r
	h := r.hub
	h.mu.Lock()
	if v.left {
		h.mu.Unlock()
		return
	}
	v.left = true
	if r.remove(v) == 0 {
		delete(h.relays, r.key)
		r.cancel()
	}
	users := h.watchLocked(r.key.ID(), v.User, -1)
	h.mu.Unlock()
	h.announce(r.key.ID(), users)
}

// Watching lists the users watching a camera ("district/camera") now.
func (h *Hub) Watching(camera string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.usersLocked(camera)
}

// Relays is how many relays run now.
func (h *Hub) Relays() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.relays)
}

func (h *Hub) watchLocked(camera, user string, delta int) []string {
	m := h.watching[camera]
	if m == nil {
		m = map[string]int{}
		h.watching[camera] = m
	}
	m[user] += delta
	if m[user] <= 0 {
		delete(m, user)
	}
	if len(m) == 0 {
		delete(h.watching, camera)
	}
	return h.usersLocked(camera)
}

func (h *Hub) usersLocked(camera string) []string {
	users := make([]string, 0, len(h.watching[camera]))
	for u := range h.watching[camera] {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

// announce tells every viewer of a camera who watches it.
func (h *Hub) announce(camera string, users []string) {
	h.mu.Lock()
	var rs []*relay
	for k, r := range h.relays {
		if k.ID() == camera {
			rs = append(rs, r)
		}
	}
	h.mu.Unlock()
	for _, r := range rs {
		r.broadcast(Message{Kind: KindViewers, Users: users})
	}
}

// relay is one camera stream shared by its viewers.
type relay struct {
	hub    *Hub
	key    Key
	cancel context.CancelFunc

	mu      sync.Mutex
	viewers map[*Viewer]struct{}
	status  Message   // the last status
	codec   *Message  // codec and init of the stream now, nil before
	init    *Message  //
	gop     []Message // fragments since the last keyframe
}

func (h *Hub) startRelay(key Key) *relay {
	ctx, cancel := context.WithCancel(context.Background())
	r := &relay{
		hub: h, key: key, cancel: cancel, viewers: map[*Viewer]struct{}{},
		status: Message{Kind: KindStatus, State: StateStarting, Text: "asking the district for the camera"},
	}
	h.relays[key] = r
	go r.run(ctx)
	return r
}

// add sends the new viewer where the relay is: its status, and the stream
// from the last keyframe when it is live.
func (r *relay) add(v *Viewer) {
	v.r = r
	r.mu.Lock()
	defer r.mu.Unlock()
	v.ch <- r.status
	// The stream now, when there is one (live, or stalled with the
	// decoder state still good).
	if r.codec != nil && r.init != nil {
		v.ch <- *r.codec
		v.ch <- *r.init
		for _, m := range r.gop {
			v.send(m)
		}
	}
	r.viewers[v] = struct{}{}
}

func (r *relay) remove(v *Viewer) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.viewers, v)
	return len(r.viewers)
}

// send queues m without blocking. A viewer that falls behind skips
// fragments up to the next keyframe; everything else always gets through
// (status, codec and init are few).
func (v *Viewer) send(m Message) {
	if m.Kind == KindFragment {
		if v.lagging && !m.Keyframe {
			return
		}
		v.lagging = false
		if len(v.ch) >= viewerQueue-8 {
			v.lagging = true
			return
		}
	}
	select {
	case v.ch <- m:
	default:
		// Only when a viewer reads nothing at all. A status, codec or init
		// it misses would leave it decoding garbage: drop it.
		v.lagging = true
		if m.Kind != KindFragment && m.Kind != KindViewers {
			select {
			case <-v.dropped:
			default:
				close(v.dropped)
			}
		}
	}
}

// broadcast sends messages to every viewer as one step: a viewer joining
// meanwhile sees all of them or none (a codec without its init would break
// its decoder).
func (r *relay) broadcast(msgs ...Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.remember(m)
		for v := range r.viewers {
			v.send(m)
		}
	}
}

// remember keeps what a viewer joining later needs.
func (r *relay) remember(m Message) {
	switch m.Kind {
	case KindStatus:
		r.status = m
		if m.State == StateReconnecting || m.State == StateStarting {
			r.codec, r.init, r.gop = nil, nil, nil
		}
	case KindCodec:
		r.codec, r.init, r.gop = &m, nil, nil
	case KindInit:
		r.init, r.gop = &m, nil
	case KindFragment:
		switch {
		case m.Keyframe:
			r.gop = append(r.gop[:0], m)
		case r.gop != nil && len(r.gop) < gopMax:
			r.gop = append(r.gop, m)
		default:
			// Keyframes further apart than the cache: a new viewer waits
			// for the next one rather than starting mid-GOP.
			r.gop = nil
		}
	}
}

// run keeps the relay going until its last viewer leaves.
func (r *relay) run(ctx context.Context) {
	log := r.hub.log.With("camera", r.key.ID(), "sub", r.key.Sub)
	failures := 0
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, openTimeout)
		src, err := r.hub.cfg.Open(octx, r.key.District, r.key.Camera, r.key.Sub)
		cancel()
		if err == nil {
			log.Info("live relay started")
			started := time.Now()
			err = r.pump(ctx, src)
			src.Close()
			if ctx.Err() != nil {
				log.Info("live relay stopped: no viewers left")
				return
			}
			if time.Since(started) > 10*time.Second {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("live relay interrupted; retrying", "error", err)
		r.broadcast(Message{Kind: KindStatus, State: StateReconnecting, Text: fmt.Sprintf("reconnecting: %v", err)})
		wait := r.hub.cfg.RetryMin << min(failures, 4)
		failures++
		select {
		case <-ctx.Done():
		case <-time.After(min(wait, r.hub.cfg.RetryMax)):
		}
	}
}

// pump relays one source until it fails or ctx ends. A source that sends
// nothing for stallAfter (the camera is down) is said to be stalled until
// frames come again.
func (r *relay) pump(ctx context.Context, src Source) error {
	stop := context.AfterFunc(ctx, src.Close)
	defer stop()
	var (
		mux     muxer
		live    bool
		mu      sync.Mutex
		last    = time.Now()
		stalled bool
	)
	watch := time.NewTicker(stallAfter / 4)
	defer watch.Stop()
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		for {
			select {
			case <-watchDone:
				return
			case <-watch.C:
				mu.Lock()
				quiet := live && !stalled && time.Since(last) > stallAfter
				if quiet {
					stalled = true
				}
				mu.Unlock()
				if quiet {
					r.broadcast(Message{Kind: KindStatus, State: StateStalled, Text: fmt.Sprintf("no picture from the camera for %s", stallAfter)})
				}
			}
		}
	}()
	for {
		f, err := src.Recv()
		if err != nil {
			return fmt.Errorf("the district's stream ended: %w", err)
		}
		msgs, err := mux.frame(f)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			continue
		}
		mu.Lock()
		last = time.Now()
		resumed := stalled
		stalled = false
		first := !live
		live = true
		mu.Unlock()
		if first || resumed {
			msgs = append([]Message{{Kind: KindStatus, State: StateLive, Text: "live"}}, msgs...)
		}
		r.broadcast(msgs...)
	}
}
