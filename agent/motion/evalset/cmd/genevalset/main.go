// Command genevalset renders the motion-detection evaluation set (see
// package evalset) with Debian's ffmpeg:
//
//	go run ./agent/motion/evalset/cmd/genevalset --out bin/evalset
//	go run ./agent/motion/evalset/cmd/genevalset --out /tmp/unseen --seed 7
//	go run ./agent/motion/evalset/cmd/genevalset --out /tmp/small --subset small
//
// Clips already up to date in the output directory are kept.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vigil-cctv/vigil/agent/motion/evalset"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genevalset:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("genevalset", flag.ContinueOnError)
	var (
		dir    = fs.String("out", "", "output directory (required unless --list)")
		seed   = fs.Uint64("seed", evalset.DefaultSeed, "seed; another seed makes a set the detectors have never seen")
		subset = fs.String("subset", evalset.SetFull, "set to make: full or small")
		only   = fs.String("only", "", "comma-separated clip names to make (default all)")
		jobs   = fs.Int("j", 0, "ffmpeg processes at once (default: the CPUs)")
		force  = fs.Bool("force", false, "render clips again even when up to date")
		list   = fs.Bool("list", false, "print the clips and their ground truth, render nothing")
		graph  = fs.String("graph", "", "print the ffmpeg filter graph of this clip, render nothing")
		plain  = fs.Bool("plain", false, "with --graph: the plain geometry (white objects on black) the tests check")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *graph != "" {
		clips, err := evalset.Plan(*subset, *seed)
		if err != nil {
			return err
		}
		for _, c := range clips {
			if c.Name == *graph {
				fmt.Fprintln(out, c.FilterGraph(*plain))
				return nil
			}
		}
		return fmt.Errorf("no clip %q in the %s set", *graph, *subset)
	}
	if *list {
		clips, err := evalset.Plan(*subset, *seed)
		if err != nil {
			return err
		}
		printClips(out, clips)
		return nil
	}
	if *dir == "" {
		return errors.New("--out is required")
	}
	opts := evalset.Options{Dir: *dir, Set: *subset, Seed: *seed, Jobs: *jobs, Force: *force}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	opts.Progress = func(c *evalset.Clip, skipped bool, took time.Duration) {
		if skipped {
			fmt.Fprintf(out, "%-14s up to date\n", c.Name)
			return
		}
		fmt.Fprintf(out, "%-14s %4.0f s of %dx%d rendered in %.1f s\n", c.Name, c.Duration(), c.Width, c.Height, took.Seconds())
	}
	start := time.Now()
	clips, err := evalset.Generate(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s set, seed %d, in %s (%.1f s):\n", *subset, *seed, *dir, time.Since(start).Seconds())
	printClips(out, clips)
	return nil
}

func printClips(out io.Writer, clips []*evalset.Clip) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIP\tSIZE\tSECONDS\tEVENTS\tSCENE")
	total := 0.0
	for _, c := range clips {
		var ev []string
		for _, e := range c.Truth.Events {
			ev = append(ev, fmt.Sprintf("%.2f-%.2f", e.Start, e.End))
		}
		if len(ev) == 0 {
			ev = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%dx%d\t%.1f\t%s\t%s\n", c.Name, c.Width, c.Height, c.Duration(), strings.Join(ev, " "), c.Truth.Scene)
		total += c.Duration()
	}
	fmt.Fprintf(tw, "total\t\t%.1f\t\t%d clips, %.1f min\n", total, len(clips), total/60)
	tw.Flush()
}
