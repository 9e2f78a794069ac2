package users

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// limiter counts recent login failures per key (a user name or a client
// address) in a sliding window. It keeps at most max failure times per key:
// that is all it needs to decide whether a key is locked and until when.
//
// Attempts in flight are counted too: without that, a burst of concurrent
// guesses would all pass the check before the first failure is recorded.
// An attempt that would exceed the limit only because others are in flight
// waits for them instead of being refused, so concurrent good logins of one
// user all succeed.
type limiter struct {
	max    int
	window time.Duration

	mu       sync.Mutex
	cond     *sync.Cond
	fails    map[string][]time.Time // ascending, at most max
	inflight map[string]int
	sweepAt  int
}

const minSweep = 1024

func newLimiter(max int, window time.Duration) *limiter {
	l := &limiter{
		max:      max,
		window:   window,
		fails:    make(map[string][]time.Time),
		inflight: make(map[string]int),
		sweepAt:  minSweep,
	}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func userKey(name string) string { return "user\x00" + name }

// addrKey is the limiter key of a client address: the host without the
// port, since every connection comes from a new port, and for IPv6 the /64,
// since anyone holding one address usually holds the whole /64.
func addrKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		if ip.Is6() {
			if p, err := ip.Prefix(64); err == nil {
				return "addr\x00" + p.String()
			}
		}
		return "addr\x00" + ip.String()
	}
	return "addr\x00" + host
}

// recent drops failures outside the window and returns how many remain.
// Callers hold mu.
func (l *limiter) recent(key string, now time.Time) int {
	times := l.fails[key]
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-l.window)) {
		cut++
	}
	if cut == len(times) {
		delete(l.fails, key)
		return 0
	}
	if cut > 0 {
		times = times[cut:]
		l.fails[key] = times
	}
	return len(times)
}

// retryAfter is the time until the oldest kept failure of a locked key
// leaves the window, rounded up to a second. Callers hold mu.
func (l *limiter) retryAfter(key string, now time.Time) time.Duration {
	times := l.fails[key]
	if len(times) == 0 {
		return 0
	}
	d := times[0].Add(l.window).Sub(now)
	d = (d + time.Second - 1).Truncate(time.Second)
	return max(d, time.Second)
}

// admit reserves an attempt for the user and address keys, or says why not.
// A nil result must be followed by exactly one call to done.
func (l *limiter) admit(now func() time.Time, ukey, akey string) *TooManyAttemptsError {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		t := now()
		nu, na := l.recent(ukey, t), l.recent(akey, t)
		if nu >= l.max {
			return &TooManyAttemptsError{Scope: "user", RetryAfter: l.retryAfter(ukey, t)}
		}
		if na >= l.max {
			return &TooManyAttemptsError{Scope: "address", RetryAfter: l.retryAfter(akey, t)}
		}
		if nu+l.inflight[ukey] < l.max && na+l.inflight[akey] < l.max {
			l.inflight[ukey]++
			l.inflight[akey]++
			return nil
		}
		l.cond.Wait()
	}
}

// outcome is how an admitted attempt ended.
type outcome int

const (
	// outcomeError: the server failed (database), which says nothing about
	// the password and counts for nothing.
	outcomeError outcome = iota
	outcomeFailure
	outcomeSuccess
	// outcomeIncomplete: the password was right and a second factor is
	// due. It counts for nothing: the person is not done proving who they
	// are, and has not failed either.
	outcomeIncomplete
)

// done ends an attempt admitted by admit. A failure counts against both
// keys; a success forgets the user's failures (the person has shown they
// know the password) but not the address's, which may be guessing other
// names.
func (l *limiter) done(t time.Time, ukey, akey string, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{ukey, akey} {
		if l.inflight[k]--; l.inflight[k] <= 0 {
			delete(l.inflight, k)
		}
	}
	switch o {
	case outcomeFailure:
		l.add(ukey, t)
		l.add(akey, t)
	case outcomeSuccess:
		delete(l.fails, ukey)
	}
	l.sweep(t)
	l.cond.Broadcast()
}

// add records one failure, keeping the times sorted even when concurrent
// attempts finish out of order. Callers hold mu.
func (l *limiter) add(key string, t time.Time) {
	times := l.fails[key]
	i := len(times)
	for i > 0 && times[i-1].After(t) {
		i--
	}
	times = slices.Insert(times, i, t)
	if len(times) > l.max {
		times = times[len(times)-l.max:]
	}
	l.fails[key] = times
}

// seed records a failure read back from the database at start.
func (l *limiter) seed(key string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(key, t)
}

// reset forgets the failures of a key (after a password change).
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
	l.cond.Broadcast()
}

// sweep drops keys with no failure left in the window, so that names and
// addresses sprayed by an attacker do not accumulate. It runs only when the
// map has doubled since the last sweep, keeping done cheap. Callers hold mu.
func (l *limiter) sweep(now time.Time) {
	if len(l.fails) < l.sweepAt {
		return
	}
	for k := range l.fails {
		l.recent(k, now)
	}
	l.sweepAt = max(minSweep, 2*len(l.fails))
}
