package registry

import (
	"fmt"

	"github.com/vigil-cctv/vigil/central/catalog"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/storage"
)

// chainLinks checks the journal entries among reports (contiguous reports
// of the current outbox) against the district's chain as linked so far and
// returns what to record: each new entry with what is wrong with the chain
// there, if anything. Entries linked already (resent after a resync) are
// left out.
func chainLinks(district string, tip catalog.JournalTip, reports []*agentv1.Report) []JournalLink {
	var links []JournalLink
	for _, rep := range reports {
		j := rep.GetJournal()
		if j == nil {
			continue
		}
		if err := catalog.ValidateReport(district, rep); err != nil {
			links = append(links, JournalLink{Problem: fmt.Sprintf("district log entry refused: %v", err)})
			continue
		}
		problem := ""
		switch {
		case j.GetSeq() == 1 && j.GetHash() == tip.First:
			continue // the same chain, resent from its start
		case j.GetSeq() == 1 && tip.Seq > 0:
			problem = fmt.Sprintf("the district's log began again (its entry 1 differs from the one linked before; %d entries had been linked): index lost or replaced?", tip.Seq)
			tip = catalog.JournalTip{}
		case j.GetSeq() <= tip.Seq:
			continue // resent after a resync: linked already
		}
		if problem == "" {
			switch want, err := storage.JournalHash(storage.JournalEntry{
				Seq: j.GetSeq(), Time: j.GetTime().AsTime(), Action: j.GetAction(), Camera: j.GetCamera(),
				Segment: j.GetSegment(), Detail: j.GetDetail(), Prev: j.GetPrev(),
			}); {
			case err != nil || want != j.GetHash():
				problem = fmt.Sprintf("entry %d: hash does not match its content", j.GetSeq())
			case j.GetSeq() != tip.Seq+1:
				problem = fmt.Sprintf("gap: entries %d to %d never arrived", tip.Seq+1, j.GetSeq()-1)
			case j.GetPrev() != tip.Hash:
				problem = fmt.Sprintf("fork at entry %d: it does not follow the entry linked before", j.GetSeq())
			}
		}
		links = append(links, JournalLink{Entry: j, Problem: problem})
		if j.GetSeq() == 1 {
			tip.First = j.GetHash()
		}
		tip.Seq, tip.Hash = j.GetSeq(), j.GetHash()
	}
	return links
}
