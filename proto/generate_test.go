package proto

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeMatchesProto regenerates every .proto into a temporary
// folder with the pinned plugins and fails if a committed file differs: the
// .proto is the source of truth.
func TestGeneratedCodeMatchesProto(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("./generate.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, msg)
	}
	n := 0
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("..", rel))
		if err != nil {
			t.Errorf("%s is not committed: run make proto", rel)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what its .proto generates: run make proto", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("only %d generated files compared", n)
	}
	// And no generated file is left without its .proto.
	matches, _ := filepath.Glob("*/*/*.pb.go")
	for _, m := range matches {
		if _, err := os.Stat(filepath.Join(out, "proto", m)); err != nil {
			t.Errorf("%s has no .proto generating it", m)
		}
	}
}
