package consoletest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"time"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/proto/actions"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
)

// firstSegment waits for a stored segment of the camera.
func (e *env) firstSegment(camera string) *agentv1.Segment {
	e.t.Helper()
	var seg *agentv1.Segment
	e.waitFor(30*time.Second, "a recorded segment of "+camera, func() bool {
		recs, _ := e.central.Catalog().List(district, camera, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if len(recs) > 0 {
			seg = recs[0]
		}
		return seg != nil
	})
	return seg
}

// open opens a recording through the API and returns its playback URL.
func (e *env) open(c *http.Client, csrf string, seg *agentv1.Segment, reason string) (int, string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"id": seg.GetId(), "camera": district + "/" + seg.GetCamera(), "reason": reason})
	req, _ := http.NewRequest(http.MethodPost, e.console+"api/recordings/open", bytes.NewReader(body))
	req.Header.Set("X-CSRF-Token", csrf)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		URL   string `json:"url"`
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, out.Error
	}
	return resp.StatusCode, strings.TrimPrefix(out.URL, "/")
}

func fetchRange(t *testing.T, c *http.Client, url, rng string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Logf("GET %s (Range %q): body: %v", url, rng, err)
	}
	return resp, b
}

// TestRecordingIsServedInRanges: a recording opened with a reason streams
// from the district whole, or in byte ranges for seeking; bad ranges and
// short reasons are refused.
func TestRecordingIsServedInRanges(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	seg := e.firstSegment("cam1")
	file, err := os.ReadFile(filepath.Join(e.agentCfg.Storage.FS.Path, seg.GetKey()))
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	csrf := e.apiLogin(c, "olga")
	if code, msg := e.open(c, csrf, seg, "too short"); code != http.StatusBadRequest || !strings.Contains(msg, "reason") {
		t.Fatalf("opening with a 9-character reason: %d %s", code, msg)
	}
	code, path := e.open(c, csrf, seg, "checking the camera's picture for the maintenance log")
	if code != http.StatusOK {
		t.Fatalf("open: %d %s", code, path)
	}
	url := e.console + path
	resp, whole := fetchRange(t, c, url, "")
	sum := sha256.Sum256(whole)
	if resp.StatusCode != http.StatusOK || hex.EncodeToString(sum[:]) != seg.GetSha256() || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("whole recording: %d, %d bytes, sha256 match %v: %.200s", resp.StatusCode, len(whole), hex.EncodeToString(sum[:]) == seg.GetSha256(), whole)
	}
	for _, r := range []struct {
		header   string
		from, to int // expected bytes [from, to)
	}{
		{"bytes=100-199", 100, 200},
		{"bytes=0-0", 0, 1},
		{fmt.Sprintf("bytes=%d-", len(file)-10), len(file) - 10, len(file)},
		{"bytes=-50", len(file) - 50, len(file)},
		{fmt.Sprintf("bytes=10-%d", len(file)+1000), 10, len(file)},
	} {
		resp, got := fetchRange(t, c, url, r.header)
		want := fmt.Sprintf("bytes %d-%d/%d", r.from, r.to-1, len(file))
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, file[r.from:r.to]) || resp.Header.Get("Content-Range") != want {
			t.Errorf("Range %s: %d, %d bytes, Content-Range %q (want %q)", r.header, resp.StatusCode, len(got), resp.Header.Get("Content-Range"), want)
		}
	}
	for _, bad := range []string{fmt.Sprintf("bytes=%d-", len(file)), "bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-y"} {
		if resp, _ := fetchRange(t, c, url, bad); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("Range %q: %d, want 416", bad, resp.StatusCode)
		}
	}
	// Another session cannot use the URL.
	other := e.client()
	e.apiLogin(other, "otto")
	if resp, _ := fetchRange(t, other, url, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("playback URL used by another session: %d", resp.StatusCode)
	}
	views := 0
	for _, r := range e.records(actions.RecordingView) {
		if r.Outcome == audit.OutcomeOK {
			views++
		}
	}
	if views != 1 {
		t.Errorf("%d recording.view records for one opening played %d times", views, 7)
	}
}

// TestTamperedRecordingIsRefusedAndReported: a segment altered in the
// district's store is not served; the district raises an alarm and logs
// it, and central records the attempt.
func TestTamperedRecordingIsRefusedAndReported(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	seg := e.firstSegment("cam1")
	path := filepath.Join(e.agentCfg.Storage.FS.Path, seg.GetKey())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	csrf := e.apiLogin(c, "olga")
	code, url := e.open(c, csrf, seg, "checking the entrance after an incident report")
	if code != http.StatusOK {
		t.Fatalf("open: %d %s", code, url)
	}
	resp, body := fetchRange(t, c, e.console+url, "")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "tampering") {
		t.Fatalf("tampered segment: %d %s", resp.StatusCode, body)
	}
	e.waitFor(20*time.Second, "the district's tampering report and alarm", func() bool {
		var byUser, byAgent bool
		for _, r := range e.records(actions.SegmentTampered) {
			byUser = byUser || r.Actor.User == "olga" && r.Target.Segment == seg.GetId() && r.Outcome == audit.OutcomeFailed
			byAgent = byAgent || r.Actor.User == "agent:"+district && strings.Contains(r.Detail, seg.GetSha256())
		}
		agents, _ := e.central.Registry().Agents()
		alarm := false
		for _, a := range agents {
			for _, al := range a.Heartbeat.GetAlarms() {
				alarm = alarm || al.GetCode() == "tampered_segment"
			}
		}
		return byUser && byAgent && alarm
	})
}

// TestLogoutEndsLiveViewsAtOnce: a live view ends, on record, the moment
// its session is logged out, not at the next session check.
func TestLogoutEndsLiveViewsAtOnce(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	c := e.client()
	csrf := e.apiLogin(c, "olga")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := strings.Replace(e.console, "https://", "wss://", 1) + "api/live?quality=sub&camera=" + district + "/cam1&csrf=" + csrf
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c, HTTPHeader: http.Header{"Origin": {strings.TrimSuffix(e.console, "/")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no video: %v", err)
		}
		if typ == websocket.MessageBinary && msg[0] == 1 {
			break
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.console+"api/logout", nil)
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %v %v", resp, err)
	}
	resp.Body.Close()
	loggedOut := time.Now()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		if websocket.CloseStatus(err) != 4401 {
			t.Fatalf("view ended with %v, want close 4401", err)
		}
		break
	}
	if d := time.Since(loggedOut); d > 2*time.Second {
		t.Errorf("the live view outlived its session by %s", d)
	}
	e.waitFor(5*time.Second, "live.stop of the logged-out view", func() bool {
		for _, r := range e.records(actions.LiveStop) {
			if strings.Contains(r.Detail, "logged out") {
				return true
			}
		}
		return false
	})
}

// TestRecordingOpenedByItsHold: a judicial hold that covers a recording
// justifies opening it (recorded with the hold); one that does not, or an
// id that is no hold, is refused and recorded as such.
func TestRecordingOpenedByItsHold(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 2)
	seg := e.firstSegment("cam1")
	officer := e.client()
	ocsrf := e.apiLogin(officer, "otto")
	place := func(camera string) string {
		t.Helper()
		body := fmt.Sprintf(`{"cameras":[%q],"from":%q,"to":%q,"authority":"Procura di Milano","case_ref":"RGNR 77/2026","reason":"preserve the entrance"}`,
			district+"/"+camera, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		req, _ := http.NewRequest(http.MethodPost, e.console+"api/ops/PlaceHold", strings.NewReader(body))
		req.Header.Set("X-CSRF-Token", ocsrf)
		req.Header.Set("Content-Type", "application/json")
		resp, err := officer.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Hold struct {
				ID string `json:"id"`
			} `json:"hold"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Hold.ID == "" {
			t.Fatalf("place hold: %d %v", resp.StatusCode, err)
		}
		return out.Hold.ID
	}
	covering, other := place("cam1"), place("cam2")

	c := e.client()
	csrf := e.apiLogin(c, "olga")
	open := func(hold string) (int, string) {
		body, _ := json.Marshal(map[string]string{"id": seg.GetId(), "camera": district + "/cam1", "hold": hold})
		req, _ := http.NewRequest(http.MethodPost, e.console+"api/recordings/open", bytes.NewReader(body))
		req.Header.Set("X-CSRF-Token", csrf)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, bad := range []string{other, "h-000000000000", "not a hold id"} {
		if code, body := open(bad); code != http.StatusBadRequest {
			t.Errorf("opening with hold %q: %d %s", bad, code, body)
		}
	}
	if code, body := open(covering); code != http.StatusOK || !strings.Contains(body, "/api/play/") {
		t.Fatalf("opening with the covering hold: %d %s", code, body)
	}
	var ok, denied int
	for _, r := range e.records(actions.RecordingView) {
		switch {
		case r.Outcome == audit.OutcomeOK && r.Target.Hold == covering && strings.Contains(r.Detail, covering):
			ok++
		case r.Outcome == audit.OutcomeDenied:
			denied++
		}
	}
	if ok != 1 || denied != 3 {
		t.Errorf("recording.view records: %d allowed with the hold, %d denied; want 1 and 3", ok, denied)
	}
}
