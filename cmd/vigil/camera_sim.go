package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/vigil-cctv/vigil/agent/camerasim"
)

// maxSimCameras bounds --count: far above what one district needs, low
// enough that a typo cannot open a million streams.
const maxSimCameras = 1000

type cameraSimOptions struct {
	listen string
	clips  string
	count  int
}

func newCameraSimCommand() *cobra.Command {
	o := cameraSimOptions{listen: camerasim.DefaultListen, count: 4}
	cmd := &cobra.Command{
		Use:   "camera-sim [--listen ADDR] [--clips DIR] [--count N]",
		Short: "Serve simulated RTSP cameras that loop video clips in real time",
		Long: `Serve N simulated IP cameras on rtsp://ADDR/cam1 … /camN (TCP and UDP
transports). Each loops a clip in real time: camN plays clip (N-1) mod the
number of clips, sorted by name; cameras sharing a clip start at different
points of it. Without --clips the clips built into vigil are used; a clip
directory holds .mp4 (or .mov .mkv .ts …, remuxed with ffmpeg) files with
H.264 or H.265 video, each with an optional NAME.json ground truth.
Runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runCameraSim(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", o.listen, "RTSP address to listen on, HOST:PORT (port 0 picks a free one)")
	f.StringVar(&o.clips, "clips", "", "directory of clips (default: the embedded clips)")
	f.IntVar(&o.count, "count", o.count, fmt.Sprintf("number of cameras, 1 to %d", maxSimCameras))
	return cmd
}

func (o cameraSimOptions) validate() error {
	if o.count < 1 || o.count > maxSimCameras {
		return fmt.Errorf("--count must be between 1 and %d, got %d", maxSimCameras, o.count)
	}
	_, port, err := net.SplitHostPort(o.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT", o.listen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--listen %q: port must be a number from 0 to 65535", o.listen)
	}
	return nil
}

func runCameraSim(cmd *cobra.Command, o cameraSimOptions) error {
	var clips []*camerasim.Clip
	var err error
	if o.clips == "" {
		clips, err = camerasim.EmbeddedClips()
	} else {
		clips, err = camerasim.LoadClips(o.clips)
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	sim, err := camerasim.New(camerasim.Config{Listen: o.listen, Clips: clips, Count: o.count, Logger: logger})
	if err != nil {
		return err
	}
	if err := sim.Start(); err != nil {
		return err
	}
	defer sim.Close()

	out := cmd.OutOrStdout()
	for n := 1; n <= sim.Count(); n++ {
		c := sim.Clip(n)
		fmt.Fprintf(out, "%-32s %s (%s %dx%d, %v)\n", sim.URL(n), c.Name, c.Codec, c.Width, c.Height, c.Duration)
	}
	<-cmd.Context().Done()
	return nil
}
