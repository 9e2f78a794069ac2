package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/vigil-cctv/vigil/central/audit"
	opsv1 "github.com/vigil-cctv/vigil/proto/ops/v1"
)

func newAuditVerifyCommand() *cobra.Command {
	var against, dataDir, keyText string
	cmd := &cobra.Command{
		Use:   "verify [--against FILE] [--data DIR]",
		Short: "Recompute the audit log's tree and check every signed checkpoint",
		Long: `Verify the audit log on this machine: every record is fetched, decoded
canonically and hashed again, the Merkle tree is recomputed, every stored
checkpoint's signature and root are checked, and consecutive checkpoints must
be consistent. With --against FILE (a checkpoint kept earlier with vigil audit
checkpoint), the log must extend it: a log replaced by a recomputed one is
caught. The first bad record is named and the exit status is non-zero.

With --data DIR, central's data directory (or a copy of it) is read directly
instead of asking central: for offline checks with central stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var kept [][]byte
			if against != "" {
				data, err := os.ReadFile(against)
				if err != nil {
					return fmt.Errorf("--against: %w", err)
				}
				kept = append(kept, data)
			}
			var (
				src audit.Source
				key string
			)
			sess, _ := loadSession()
			if sess != nil && sess.AuditCheckpoint != "" {
				// The log must still extend what this machine saw last.
				kept = append(kept, []byte(sess.AuditCheckpoint))
			}
			if dataDir != "" {
				log, err := audit.Open(filepath.Join(dataDir, "audit.db"), audit.Options{ReadOnly: true})
				if err != nil {
					return fmt.Errorf("%w (is central running on this directory? verify a copy, or stop it)", err)
				}
				defer log.Close()
				src = log
				// The key beside the data proves nothing: whoever rewrote
				// the log could rewrite it too. Use the pinned or given one.
				pub, _ := os.ReadFile(filepath.Join(dataDir, "pki", "vigil-central.pub"))
				onDisk := strings.TrimSpace(string(pub))
				switch {
				case keyText != "":
					key = keyText
				case sess != nil && sess.AuditKey != "":
					key = sess.AuditKey
				case onDisk != "":
					key = onDisk
					fmt.Fprintln(cmd.ErrOrStderr(), "warning: no pinned audit key: trusting the key found in the data directory; pass --key to verify against a key you hold")
				default:
					return errors.New("no audit key: pass --key")
				}
				if onDisk != "" && onDisk != key {
					return fmt.Errorf("the data directory's audit key %s is not the pinned one %s: the log may have been replaced", onDisk, key)
				}
			} else {
				bundle, vkey, err := fetchAuditLog(cmd)
				if err != nil {
					return err
				}
				if err := pinAuditKey(vkey); err != nil {
					return err
				}
				src, key = bundle, vkey
			}
			verifier, err := note.NewVerifier(key)
			if err != nil {
				return fmt.Errorf("audit key %q: %w", key, err)
			}
			rep, err := audit.Verify(src, verifier, kept...)
			var te *audit.TamperError
			if errors.As(err, &te) {
				return fmt.Errorf("audit log NOT intact: first bad record is #%d: %s", te.Seq, te.Reason)
			}
			if err != nil {
				return fmt.Errorf("audit log NOT verified: %w", err)
			}
			if dataDir == "" {
				if b, ok := src.(*audit.Bundle); ok && len(b.CheckpointNotes) > 0 {
					if err := rememberAuditCheckpoint(b.CheckpointNotes[len(b.CheckpointNotes)-1]); err != nil {
						return err
					}
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "audit log intact: %d records, %d signed checkpoints verified (latest at %d), root %s, in %s\n",
				rep.Records, rep.Checkpoints, rep.Latest, rep.Root, rep.Duration.Round(1e6))
			if against != "" {
				fmt.Fprintf(out, "it extends the kept checkpoint %s\n", against)
			} else if rep.Kept > 0 {
				fmt.Fprintln(out, "it extends the checkpoint this machine verified last")
			}
			if rep.Unanchored > 0 {
				fmt.Fprintf(out, "note: the last %d records are not yet under a signed checkpoint\n", rep.Unanchored)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&against, "against", "", "a checkpoint kept earlier (vigil audit checkpoint > FILE)")
	f.StringVar(&dataDir, "data", "", "verify central's data directory (or a copy) instead of asking central")
	f.StringVar(&keyText, "key", "", "the audit verifier key (with --data; default: DIR/pki/vigil-central.pub)")
	return cmd
}

// fetchAuditLog downloads every record and checkpoint, page by page.
func fetchAuditLog(cmd *cobra.Command) (*audit.Bundle, string, error) {
	client, _, closeFn, err := opsClient()
	if err != nil {
		return nil, "", err
	}
	defer closeFn()
	bundle := &audit.Bundle{}
	var key string
	for {
		resp, err := client.AuditRecords(cmd.Context(), &opsv1.AuditRecordsRequest{From: uint64(len(bundle.RecordBytes)), Count: 10000})
		if err != nil {
			return nil, "", callError(err)
		}
		if len(bundle.RecordBytes) == 0 {
			bundle.CheckpointNotes, key = resp.GetCheckpoints(), resp.GetVerifierKey()
		}
		bundle.RecordBytes = append(bundle.RecordBytes, resp.GetRecords()...)
		if len(resp.GetRecords()) == 0 || uint64(len(bundle.RecordBytes)) >= resp.GetSize() {
			return bundle, key, nil
		}
	}
}
