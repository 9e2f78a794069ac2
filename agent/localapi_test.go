package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/agent/config"
	"github.com/vigil-cctv/vigil/agent/internal/agenttest"
)

// Bad requests to the local socket get a 400 with a clear error.
func TestLocalAPIRejectsBadQueries(t *testing.T) {
	cfg := testConfig(t, config.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x"})
	startAgent(t, cfg, Options{})
	sock := filepath.Join(cfg.DataDir, SocketName)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	agenttest.WaitFor(t, 5*time.Second, "socket", func() bool { _, err := net.Dial("unix", sock); return err == nil })
	now := time.Now().UTC().Format(time.RFC3339)
	for _, c := range []struct{ query, want string }{
		{"camera=test/cam&from=yesterday&to=" + now, "from: want RFC 3339"},
		{"camera=test/cam&from=" + now + "&to=", "to: want RFC 3339"},
		{"camera=../etc&from=" + now + "&to=" + now, "district id"},
		{"camera=gate&from=" + now + "&to=" + now, "want DISTRICT/CAMERA"},
		{"camera=test/..&from=" + now + "&to=" + now, "camera id"},
		{"camera=test/cam&from=" + now + "&to=" + now, "from must be before to"},
	} {
		resp, err := hc.Get("http://agent/v1/recordings?" + c.query)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Error, c.want) {
			t.Errorf("%s: %d %q, want 400 with %q", c.query, resp.StatusCode, body.Error, c.want)
		}
	}
	resp, err := hc.Post("http://agent/v1/recordings", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST answered %d", resp.StatusCode)
	}
}

func FuzzParseRecordingsQuery(f *testing.F) {
	f.Add("north/gate", "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z")
	f.Add("../x", "", "now")
	f.Fuzz(func(t *testing.T, camera, from, to string) {
		q, err := parseRecordingsQuery(url.Values{"camera": {camera}, "from": {from}, "to": {to}})
		if err != nil {
			return
		}
		if !q.From.Before(q.To) || strings.ContainsAny(q.District+q.Camera, "/.\\\x00") {
			t.Fatalf("accepted %+v", q)
		}
	})
}
