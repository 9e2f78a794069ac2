package config

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	cfg, err := Parse([]byte("data_dir: /var/lib/vigil/central\nhosts: [central.example.org, 10.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AgentListen != DefaultAgentListen || cfg.SessionTTL.Std() != 8*time.Hour || cfg.EnrollmentTTL.Std() != 24*time.Hour {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, c := range []struct{ yaml, want string }{
		{"", "empty configuration"},
		{"data_dir: /x\ncolour: red\n", "field colour not found"},
		{"hosts: [a]\n", "data_dir: required"},
		{"data_dir: /x\nagent_listen: nowhere\n", "agent_listen"},
		{"data_dir: /x\nagent_listen: :1\napi_listen: :1\n", "must differ"},
		{"data_dir: /x\nsession_ttl: 720h\n", "session_ttl"},
		{"data_dir: /x\nsession_ttl: 8\n", "must be a string"},
		{"data_dir: /x\nsession_ttl: 0s\n", "positive duration"},
		{"data_dir: /x\nhosts: ['bad host']\n", "hosts"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line with %q", c.yaml, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("data_dir: /x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if cfg.DataDir == "" || cfg.AgentListen == cfg.APIListen {
			t.Fatalf("accepted %+v", cfg)
		}
	})
}

// The example shipped to operators must stay a valid configuration.
func TestDeployExampleParses(t *testing.T) {
	cfg, err := Load("../../deploy/central.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AgentListen != "0.0.0.0:7443" || len(cfg.Hosts) != 2 {
		t.Fatalf("example parsed as %+v", cfg)
	}
}
