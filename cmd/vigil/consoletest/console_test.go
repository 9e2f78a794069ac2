package consoletest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/proto/actions"
)

// tileVideo is the JavaScript expression of a live tile's video element.
func tileVideo(camera string) string {
	return fmt.Sprintf(`document.querySelector('.tile[data-camera="%s"] video')`, camera)
}

// TestOperatorWatchesLiveAndPlaysARecording is an operator's shift in the
// browser: log in, watch a camera live (the video plays), leave the wall
// (the view's start and end are on record, in that order), then open a
// recording: refused without a reason, played and recorded with one.
func TestOperatorWatchesLiveAndPlaysARecording(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk", "walk-h265"), 2)
	ctx := browser(t)
	e.login(ctx, "olga")

	video := tileVideo(district + "/cam1")
	waitJS(t, ctx, 20*time.Second, "the live tile to show a picture", video+` && `+video+`.videoWidth > 0 && `+video+`.readyState >= 2`)
	t1 := evalJS[float64](t, ctx, video+`.currentTime`)
	waitJS(t, ctx, 10*time.Second, "the live video to advance", fmt.Sprintf(`%s.currentTime > %f + 0.5`, video, t1))
	if w := evalJS[int](t, ctx, video+`.videoWidth`); w != 640 {
		t.Errorf("live video is %d pixels wide, want the camera's 640", w)
	}
	lat := evalJS[[]float64](t, ctx, fmt.Sprintf(`Array.from(document.querySelector('.tile[data-camera="%s/cam1"]').latencies || [])`, district))
	if len(lat) == 0 {
		t.Error("the tile measured no latency from the agent's timestamps")
	}
	// The H.265 camera's tile says plainly that the browser cannot play it.
	waitJS(t, ctx, 20*time.Second, "the H.265 tile to say it cannot play",
		fmt.Sprintf(`(document.querySelector('.tile[data-camera="%s/cam2"]')?.innerText || '').includes('H.265')`, district))

	starts := e.records(actions.LiveStart)
	if len(starts) == 0 || starts[0].Actor.User != "olga" || starts[0].Target.Camera != "cam1" && starts[0].Target.Camera != "cam2" {
		t.Fatalf("live.start records: %+v", starts)
	}
	// Leaving the wall ends the views.
	run(t, ctx, 10*time.Second, "open playback", chromedp.Click(chromedp.CSS(`nav button[data-tab="playback"]`)))
	e.waitFor(10*time.Second, "live.stop of cam1", func() bool { return hasRecord(e.records(actions.LiveStop), "olga", "cam1") })
	startSeq, stopSeq := -1, -1
	for _, r := range e.records("live.*") {
		if r.Target.Camera != "cam1" {
			continue
		}
		if r.Action == actions.LiveStart && startSeq < 0 {
			startSeq = int(r.Seq)
		}
		if r.Action == actions.LiveStop {
			stopSeq = int(r.Seq)
			if !strings.Contains(r.Detail, "watched") {
				t.Errorf("live.stop without the duration: %q", r.Detail)
			}
		}
	}
	if startSeq < 0 || stopSeq < startSeq {
		t.Fatalf("live.start (#%d) must come before live.stop (#%d)", startSeq, stopSeq)
	}

	// Wait for a recorded segment, then find it in the page.
	e.waitFor(30*time.Second, "a recorded segment of cam1", func() bool {
		recs, _ := e.central.Catalog().List(district, "cam1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		return len(recs) > 0
	})
	waitJS(t, ctx, 10*time.Second, "the camera list of playback", `!!document.querySelector('#pb-camera option[value="`+district+`/cam1"]')`)
	run(t, ctx, 10*time.Second, "choose the camera",
		chromedp.WaitVisible(chromedp.CSS("#pb-camera")),
		chromedp.SetValue(chromedp.CSS("#pb-camera"), district+"/cam1"),
	)
	// Search until the segment shows, as an operator would click again.
	for attempt := 1; ; attempt++ {
		run(t, ctx, 10*time.Second, "search recordings", chromedp.Click(chromedp.CSS("#pb-search")))
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS("#pb-list .pb-segment")))
		cancel()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("no segment listed after %d searches\npage:\n%s", attempt, pageText(ctx))
		}
		t.Logf("search %d listed nothing (%s); searching again", attempt, evalJS[string](t, ctx, `document.querySelector('#pb-summary')?.innerText || ''`))
	}
	run(t, ctx, 10*time.Second, "open the segment",
		chromedp.Click(chromedp.CSS("#pb-list .pb-segment")),
		chromedp.WaitVisible(chromedp.CSS("#pb-reason")),
	)
	// Without a reason: refused, and nothing plays.
	run(t, ctx, 10*time.Second, "play without a reason", chromedp.Click(chromedp.CSS("#pb-play")))
	waitJS(t, ctx, 10*time.Second, "the refusal to show", `(document.querySelector('#pb-error')?.innerText || '').length > 0`)
	if src := evalJS[string](t, ctx, `document.querySelector('#pb-video')?.getAttribute('src') || ''`); src != "" {
		t.Fatalf("the video got a source without a reason: %q", src)
	}
	const reason = "incident 2026-118: door forced at the north entrance"
	run(t, ctx, 10*time.Second, "play with a reason",
		chromedp.SendKeys(chromedp.CSS("#pb-reason"), reason),
		chromedp.Click(chromedp.CSS("#pb-play")),
	)
	waitJS(t, ctx, 20*time.Second, "the recording to play", `(() => { const v = document.querySelector('#pb-video'); return !!v && v.videoWidth > 0 && v.readyState >= 2; })()`)
	views := e.records(actions.RecordingView)
	var ok *audit.Record
	for i := range views {
		if views[i].Outcome == audit.OutcomeOK {
			ok = &views[i]
		}
	}
	if ok == nil || ok.Reason != reason || ok.Actor.User != "olga" || ok.Target.Segment == "" || ok.Target.From.IsZero() {
		t.Fatalf("recording.view record: %+v", views)
	}
}

func hasRecord(recs []audit.Record, user, camera string) bool {
	for _, r := range recs {
		if r.Actor.User == user && r.Target.Camera == camera {
			return true
		}
	}
	return false
}

// TestAuditorSeesNoVideo: the auditor's page has no video controls, and the
// video endpoints refuse the auditor's session.
func TestAuditorSeesNoVideo(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	ctx := browser(t)
	e.login(ctx, "ada")
	run(t, ctx, 10*time.Second, "open the audit tab",
		chromedp.Click(chromedp.CSS(`nav button[data-tab="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#audit-list")),
	)
	checks := map[string]string{
		"video elements":  `document.querySelectorAll('video').length`,
		"live tab":        `document.querySelectorAll('nav button[data-tab="live"]').length`,
		"playback tab":    `document.querySelectorAll('nav button[data-tab="playback"]').length`,
		"live wall tiles": `document.querySelectorAll('.tile').length`,
	}
	for what, expr := range checks {
		if n := evalJS[int](t, ctx, expr); n != 0 {
			t.Errorf("the auditor's page has %d %s", n, what)
		}
	}
	c := e.client()
	csrf := e.apiLogin(c, "ada")
	if code, body := get(t, c, e.console+"api/live?camera="+district+"/cam1&quality=sub&csrf="+csrf); code != http.StatusForbidden {
		t.Errorf("live for the auditor: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, e.console+"api/recordings/open", strings.NewReader(`{"id":"x","camera":"north/cam1","reason":"auditing the auditors"}`))
	req.Header.Set("X-CSRF-Token", csrf)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("opening a recording as the auditor: %d", resp.StatusCode)
	}
	if code, body := get(t, c, e.console+"api/play/anything"); code != http.StatusForbidden {
		t.Errorf("playing as the auditor: %d %s", code, body)
	}
	denied := 0
	for _, r := range e.records("") {
		if r.Actor.User == "ada" && r.Outcome == audit.OutcomeDenied && (r.Action == actions.LiveStart || r.Action == actions.RecordingView) {
			denied++
		}
	}
	if denied < 2 {
		t.Errorf("the auditor's refused video requests are not on record as denied (%d found)", denied)
	}
}

// TestLiveTileRecoversWhenTheAgentReturns: the district's agent goes away
// in the middle of a view; the tile says it is reconnecting, the aborted
// view is closed on record, and the picture comes back with the agent.
func TestLiveTileRecoversWhenTheAgentReturns(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	ctx := browser(t)
	e.login(ctx, "olga")
	camera := district + "/cam1"
	video := tileVideo(camera)
	tile := fmt.Sprintf(`document.querySelector('.tile[data-camera="%s"]')`, camera)
	waitJS(t, ctx, 20*time.Second, "the live tile to play", video+` && `+video+`.videoWidth > 0 && `+video+`.readyState >= 2`)

	e.stopAgent()
	waitJS(t, ctx, 20*time.Second, "the tile to say it is reconnecting", `(`+tile+`.innerText || '').toLowerCase().includes('reconnecting')`)
	e.waitFor(10*time.Second, "live.stop of the aborted view", func() bool {
		for _, r := range e.records(actions.LiveStop) {
			if r.Actor.User == "olga" && strings.Contains(r.Detail, "aborted") {
				return true
			}
		}
		return false
	})
	startsBefore := len(e.records(actions.LiveStart))

	e.startAgent()
	e.waitFor(30*time.Second, "the agent to reconnect", func() bool { return e.central.Registry().Connected(district) })
	waitJS(t, ctx, 30*time.Second, "the tile to play again", `!(`+tile+`.innerText || '').toLowerCase().includes('reconnecting') && `+video+`.videoWidth > 0`)
	t1 := evalJS[float64](t, ctx, video+`.currentTime`)
	waitJS(t, ctx, 10*time.Second, "the live video to advance again", fmt.Sprintf(`%s.currentTime > %f + 0.5`, video, t1))
	if n := len(e.records(actions.LiveStart)); n <= startsBefore {
		t.Errorf("the resumed view has no new live.start (%d before, %d after)", startsBefore, n)
	}
}
