package main

import (
	"fmt"
	"strings"
	"time"
)

// parseTime reads the CLI's time arguments: RFC 3339 ("2026-11-28T10:00:00Z"),
// "now", or a duration relative to now ("-2h", "+1h", "-30m").
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, fmt.Errorf("empty time")
	case s == "now":
		return now, nil
	case s[0] == '-' || s[0] == '+':
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: relative times look like -2h, +30m", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-11-28T10:00:00Z), now, or a relative time such as -2h", s)
	}
	return t, nil
}
