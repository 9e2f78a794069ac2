package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	centralconfig "github.com/vigil-cctv/vigil/central/config"
)

// TestAuditorCLI: an auditor lists, reports, keeps a checkpoint and
// verifies the log against it; on a tampered copy of central's data,
// verify names the first bad record and fails.
func TestAuditorCLI(t *testing.T) {
	t.Setenv("VIGIL_HOME", t.TempDir())
	dir := t.TempDir()
	ccfg := &centralconfig.Config{DataDir: filepath.Join(dir, "central"), AgentListen: freeAddr(t), APIListen: freeAddr(t), ConsoleListen: "127.0.0.1:0"}
	if err := ccfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	central := startCentralProcess(t, ccfg)
	defer func() { central.stop(t) }()
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		root := newRootCommand()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	api, fp := central.APIAddr(), central.Fingerprint()
	if _, err := run(central.AdminPassword+"\n", "login", "--central", api, "--user", "admin", "--password-stdin", "--ca-fingerprint", fp); err != nil {
		t.Fatal(err)
	}
	if _, err := run("auditor pass 1\n", "user", "add", "aude", "--role", "auditor", "--designation", "act 3", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("", "audit", "log"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("admin reads the audit log: %v", err)
	}
	if _, err := run("auditor pass 1\n", "login", "--central", api, "--user", "aude", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	out, err := run("", "audit", "log", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) < 4 {
		t.Fatalf("audit log json: %v %s", err, out)
	}
	for _, k := range []string{"seq", "time", "actor", "role", "action", "target", "reason", "client", "outcome"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("audit log json lacks %q", k)
		}
	}
	if out, err := run("", "audit", "log", "--action", "user.*", "--actor", "admin"); err != nil || !strings.Contains(out, "user.add") || strings.Contains(out, "login.ok") {
		t.Fatalf("filtered log: %v\n%s", err, out)
	}
	if out, err := run("", "audit", "log", "-o", "csv", "--action", "login.*"); err != nil || !strings.HasPrefix(out, "seq,time,actor") {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	if out, err := run("", "audit", "report", "--since", "-1h"); err != nil || !strings.Contains(out, "Refused attempts: 1") {
		t.Fatalf("report: %v\n%s", err, out)
	}
	kept, err := run("", "audit", "checkpoint")
	if err != nil || !strings.HasPrefix(kept, "vigil-central/audit\n") {
		t.Fatalf("checkpoint: %v %q", err, kept)
	}
	keptFile := filepath.Join(dir, "kept.checkpoint")
	os.WriteFile(keptFile, []byte(kept), 0o600)
	if out, err := run("", "audit", "verify", "--against", keptFile); err != nil || !strings.Contains(out, "audit log intact") || !strings.Contains(out, "extends the kept checkpoint") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	// Offline, on a copy of central's data with one record's byte changed.
	central.stop(t)
	cp := filepath.Join(dir, "copy")
	os.MkdirAll(filepath.Join(cp, "pki"), 0o700)
	for _, f := range []string{"audit.db", "pki/vigil-central.pub"} {
		data, err := os.ReadFile(filepath.Join(ccfg.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(cp, f), data, 0o600)
	}
	if out, err := run("", "audit", "verify", "--data", cp, "--against", keptFile); err != nil {
		t.Fatalf("verify of an untouched copy: %v\n%s", err, out)
	}
	// A key beside the data is not trusted over the pinned one: whoever
	// replaced the log could replace the key too.
	_, otherKey, err := note.GenerateKey(nil, "vigil-central/audit")
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(cp, "pki", "vigil-central.pub")
	orig, _ := os.ReadFile(pub)
	os.WriteFile(pub, []byte(otherKey+"\n"), 0o600)
	if _, err := run("", "audit", "verify", "--data", cp); err == nil || !strings.Contains(err.Error(), "not the pinned one") {
		t.Fatalf("replaced key beside the data: %v", err)
	}
	os.WriteFile(pub, orig, 0o600)
	db, err := bolt.Open(filepath.Join(cp, "audit.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := binary.BigEndian.AppendUint64(nil, 2)
		v := []byte(string(b.Get(k)))
		v[len(v)/2] ^= 1 // one bit of record 2
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = run("", "audit", "verify", "--data", cp)
	if err == nil || !strings.Contains(err.Error(), "first bad record is #2") {
		t.Fatalf("tampered copy: %v", err)
	}
}

// Text from outside (a user name typed at a login) cannot forge table lines,
// drive the terminal, or run as a spreadsheet formula.
func TestAuditCellsAreInert(t *testing.T) {
	for in, want := range map[string]string{
		"olga":                   "olga",
		"x\n42 fake line":        `x\n42 fake line`,
		"\x1b[31mred":            `\x1b[31mred`,
		"caf\u00e9 \u65e5\u672c": "caf\u00e9 \u65e5\u672c",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-2": "'-2", "@x": "'@x", "north": "north", "": ""} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
