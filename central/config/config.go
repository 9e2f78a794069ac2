// Package config loads central's YAML configuration, strictly: unknown keys
// and bad values are refused with one clear line before anything starts.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is central's configuration file.
type Config struct {
	// DataDir holds central's database, its CA and the bootstrap admin
	// password file.
	DataDir string `yaml:"data_dir"`
	// AgentListen is where agents connect (mutual TLS).
	AgentListen string `yaml:"agent_listen"`
	// APIListen is where the CLI connects (TLS and a login token).
	APIListen string `yaml:"api_listen"`
	// Hosts are the names and addresses put in central's certificate.
	Hosts []string `yaml:"hosts"`
	// SessionTTL is how long a login lasts (default 8h).
	SessionTTL Duration `yaml:"session_ttl"`
	// EnrollmentTTL is the default validity of enrolment tokens (24h).
	EnrollmentTTL Duration `yaml:"enrollment_ttl"`
	// AgentCertValidity is how long an agent certificate lasts (365d).
	AgentCertValidity Duration `yaml:"agent_cert_validity"`
	// ConsoleListen is where the operators' web console is served over
	// HTTPS (default 127.0.0.1:8443); "off" serves none.
	ConsoleListen string `yaml:"console_listen"`
	// ConsoleCert and ConsoleKey are PEM files of a certificate for the
	// console (one a browser already trusts); by default the console uses
	// the certificate central's own CA issues for Hosts.
	ConsoleCert string `yaml:"console_cert"`
	ConsoleKey  string `yaml:"console_key"`
	// ConsoleIdleTimeout ends a console session unused for this long
	// (default 15m).
	ConsoleIdleTimeout Duration `yaml:"console_idle_timeout"`
}

// Duration is a Go duration in YAML ("8h", "90m"); zero is refused so that
// an explicit 0 never silently means the default.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("line %d: duration must be a string such as 8h or 90m, got %q", n.Line, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a positive duration such as 8h or 90m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Defaults.
const (
	DefaultAgentListen   = "127.0.0.1:7443"
	DefaultAPIListen     = "127.0.0.1:7444"
	DefaultConsoleListen = "127.0.0.1:8443"
	// ConsoleOff as console_listen serves no console.
	ConsoleOff = "off"
)

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly and validates it.
func Parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, errors.New(strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " "))
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// CheckAndSetDefaults validates and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DataDir == "" {
		return errors.New("data_dir: required")
	}
	c.DataDir = filepath.Clean(c.DataDir)
	if c.AgentListen == "" {
		c.AgentListen = DefaultAgentListen
	}
	if c.APIListen == "" {
		c.APIListen = DefaultAPIListen
	}
	for name, addr := range map[string]string{"agent_listen": c.AgentListen, "api_listen": c.APIListen} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return fmt.Errorf("%s: %q is not HOST:PORT", name, addr)
		}
	}
	if _, port, _ := net.SplitHostPort(c.AgentListen); c.AgentListen == c.APIListen && port != "0" {
		return errors.New("agent_listen and api_listen must differ")
	}
	if c.ConsoleListen == "" {
		c.ConsoleListen = DefaultConsoleListen
	}
	if c.ConsoleListen != ConsoleOff {
		if _, port, err := net.SplitHostPort(c.ConsoleListen); err != nil || port == "" {
			return fmt.Errorf("console_listen: %q is not HOST:PORT or off", c.ConsoleListen)
		}
		if _, port, _ := net.SplitHostPort(c.ConsoleListen); port != "0" && (c.ConsoleListen == c.AgentListen || c.ConsoleListen == c.APIListen) {
			return errors.New("console_listen must differ from agent_listen and api_listen")
		}
	}
	if (c.ConsoleCert == "") != (c.ConsoleKey == "") {
		return errors.New("console_cert and console_key: give both or neither")
	}
	for _, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
			return fmt.Errorf("hosts: %q is not a host name or IP address", h)
		}
	}
	defaults := []struct {
		name    string
		d       *Duration
		def, hi time.Duration
	}{
		{"session_ttl", &c.SessionTTL, 8 * time.Hour, 7 * 24 * time.Hour},
		{"enrollment_ttl", &c.EnrollmentTTL, 24 * time.Hour, 7 * 24 * time.Hour},
		{"agent_cert_validity", &c.AgentCertValidity, 365 * 24 * time.Hour, 3 * 365 * 24 * time.Hour},
		{"console_idle_timeout", &c.ConsoleIdleTimeout, 15 * time.Minute, 8 * time.Hour},
	}
	for _, d := range defaults {
		if *d.d == 0 {
			*d.d = Duration(d.def)
		}
		if v := d.d.Std(); v < time.Minute || v > d.hi {
			return fmt.Errorf("%s: %s is not within 1m-%s", d.name, d.d, Duration(d.hi))
		}
	}
	return nil
}
