package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-cctv/vigil/central/catalog"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// chain makes n chained entries as an agent would, starting after prev.
func chain(t *testing.T, first uint64, n int, prev, detail string) []*agentv1.Report {
	t.Helper()
	var out []*agentv1.Report
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for i := range n {
		e := storage.JournalEntry{Seq: first + uint64(i), Time: at.Add(time.Duration(i) * time.Second), Action: "segment.deleted",
			Camera: "gate", Detail: fmt.Sprint(detail, i), Prev: prev}
		h, err := storage.JournalHash(e)
		if err != nil {
			t.Fatal(err)
		}
		prev = h
		out = append(out, &agentv1.Report{Seq: e.Seq, At: timestamppb.New(e.Time), Body: &agentv1.Report_Journal{Journal: &agentv1.JournalEntry{
			Seq: e.Seq, Time: timestamppb.New(e.Time), Action: e.Action, Camera: e.Camera, Detail: e.Detail, Prev: e.Prev, Hash: h,
		}}})
	}
	return out
}

func tipOf(reps []*agentv1.Report) catalog.JournalTip {
	last := reps[len(reps)-1].GetJournal()
	return catalog.JournalTip{Seq: last.GetSeq(), Hash: last.GetHash(), First: reps[0].GetJournal().GetHash()}
}

func problems(links []JournalLink) []string {
	var out []string
	for _, l := range links {
		if l.Problem != "" {
			out = append(out, l.Problem)
		}
	}
	return out
}

// Central links a district's chain entry by entry and names each way it can
// break: a gap, a fork, an entry whose hash does not match, a log begun
// again; resent entries are not linked twice.
func TestChainLinks(t *testing.T) {
	five := chain(t, 1, 5, "", "retention ")
	if l := chainLinks("north", catalog.JournalTip{}, five); len(l) != 5 || len(problems(l)) != 0 {
		t.Fatalf("intact chain: %d links, problems %v", len(l), problems(l))
	}
	tip := tipOf(five)
	if l := chainLinks("north", tip, five); len(l) != 0 {
		t.Fatalf("resent chain linked again: %d", len(l))
	}
	next := chain(t, 6, 2, tip.Hash, "pressure ")
	if l := chainLinks("north", tip, append(five[3:], next...)); len(l) != 2 || len(problems(l)) != 0 {
		t.Fatalf("continuation: %d links, %v", len(l), problems(l))
	}

	for _, tc := range []struct {
		name string
		reps []*agentv1.Report
		want string
	}{
		{"gap", chain(t, 8, 1, tip.Hash, "x"), "gap: entries 6 to 7 never arrived"},
		{"fork", chain(t, 6, 1, strings.Repeat("ab", 32), "x"), "fork at entry 6"},
		{"began again", chain(t, 1, 2, "", "new index "), "began again"},
		{"edited", func() []*agentv1.Report {
			r := chain(t, 6, 1, tip.Hash, "pressure ")
			r[0].GetJournal().Detail = "retention 0"
			return r
		}(), "entry 6: hash does not match"},
		{"invalid", func() []*agentv1.Report {
			r := chain(t, 6, 1, tip.Hash, "x")
			r[0].GetJournal().Seq = 0
			return r
		}(), "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := chainLinks("north", tip, tc.reps)
			p := problems(l)
			if len(p) != 1 || !strings.Contains(p[0], tc.want) {
				t.Fatalf("problems %q, want one with %q", p, tc.want)
			}
			if len(l) != len(tc.reps) {
				t.Fatalf("%d links for %d entries: every entry is recorded, broken or not", len(l), len(tc.reps))
			}
		})
	}
}
