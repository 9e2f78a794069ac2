package users

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLogin is what a person waits for at login with the default
// argon2id parameters (64 MiB, one pass, two threads): the verification
// plus the durable session write.
func BenchmarkLogin(b *testing.B) {
	e := mustNew(b, func(o *Options) {
		o.Argon2 = Argon2Params{} // defaults
		o.Now = time.Now
	})
	e.mustAdd(b, "olga", RoleOperator, []string{"north"}, goodPassword)
	b.ResetTimer()
	for b.Loop() {
		if _, _, _, err := e.Login("olga", goodPassword, "10.0.0.1:1"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(b.N), "ms/op")
}

// BenchmarkVerify is the argon2id verification alone, default parameters.
func BenchmarkVerify(b *testing.B) {
	h, err := hashPassword(goodPassword, Argon2Params{}.withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := verifyPassword(goodPassword, h); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(b.N), "ms/op")
}

// BenchmarkAuthenticate is the token check every RPC pays.
func BenchmarkAuthenticate(b *testing.B) {
	e := mustNew(b, func(o *Options) { o.Now = time.Now })
	// Some sessions besides the one checked, as in a busy control room.
	for i := range 50 {
		name := fmt.Sprintf("user%d", i)
		e.mustAdd(b, name, RoleAuditor, nil, goodPassword)
		e.mustLogin(b, name, goodPassword, "10.0.0.1:1")
	}
	tok := e.mustLogin(b, "user7", goodPassword, "10.0.0.1:1")
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := e.Authenticate(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := e.Authenticate(tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
