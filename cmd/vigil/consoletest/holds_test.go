package consoletest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-cctv/vigil/central/audit"
	"github.com/vigil-cctv/vigil/central/holds"
	"github.com/vigil-cctv/vigil/proto/actions"
)

// TestOfficerPlacesAndReleasesAHoldInTheBrowser: the responsible officer
// manages holds from the page: the hold reaches the district, both steps
// are on record with who, the case and the reason.
func TestOfficerPlacesAndReleasesAHoldInTheBrowser(t *testing.T) {
	e := startEnv(t, clipsNamed(t, "walk"), 1)
	ctx := browser(t)
	e.login(ctx, "otto")
	local := func(tm time.Time) string { return tm.Local().Format("2006-01-02T15:04:05") }
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	run(t, ctx, 20*time.Second, "place a hold",
		chromedp.Click(chromedp.CSS(`nav button[data-tab="holds"]`)),
		chromedp.WaitVisible(chromedp.CSS("#hold-form")),
		chromedp.SendKeys(chromedp.CSS("#hold-cameras"), district+"/cam1"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('#hold-from').value = %q; document.querySelector('#hold-to').value = %q;`, local(from), local(to))),
		chromedp.SendKeys(chromedp.CSS("#hold-authority"), "Procura di Milano"),
		chromedp.SendKeys(chromedp.CSS("#hold-case"), "RGNR 1234/2026"),
		chromedp.SendKeys(chromedp.CSS("#hold-reason"), "order of 28 November to preserve footage"),
		chromedp.Click(chromedp.CSS("#hold-submit")),
	)
	var h holds.Hold
	e.waitFor(20*time.Second, "the hold to be applied at the district", func() bool {
		hs, err := e.central.Holds().List(true)
		if err != nil || len(hs) != 1 {
			return false
		}
		h = hs[0]
		a, ok := h.Agent(district)
		return ok && a.State == holds.AgentApplied
	})
	if h.Officer != "otto" || h.Authority != "Procura di Milano" || h.Case != "RGNR 1234/2026" {
		t.Fatalf("hold placed from the page: %+v", h)
	}
	waitJS(t, ctx, 20*time.Second, "the hold in the list", fmt.Sprintf(`!!document.querySelector('#holds-list .hold-release[data-id="%s"]')`, h.ID))
	run(t, ctx, 20*time.Second, "release the hold",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`.hold-release[data-id="%s"]`, h.ID))),
		chromedp.WaitVisible(chromedp.CSS("#release-reason")),
		chromedp.SendKeys(chromedp.CSS("#release-reason"), "the authority withdrew its order"),
		chromedp.Click(chromedp.CSS("#release-confirm")),
	)
	e.waitFor(20*time.Second, "the hold to be released", func() bool {
		got, err := e.central.Holds().Get(h.ID)
		return err == nil && got.State == holds.StateReleased
	})
	var placed, released bool
	for _, r := range e.records("hold.*") {
		if r.Actor.User != "otto" || r.Outcome != audit.OutcomeOK {
			continue
		}
		placed = placed || r.Action == actions.HoldPlace && r.Target.Hold == h.ID && r.Reason == "order of 28 November to preserve footage"
		released = released || r.Action == actions.HoldRelease && r.Target.Hold == h.ID && r.Reason == "the authority withdrew its order"
	}
	if !placed || !released {
		t.Errorf("hold changes on record: placed %v, released %v", placed, released)
	}
}
