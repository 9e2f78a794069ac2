// Package consoletest drives the operators' web console in a real Chromium
// (Debian's chromium, headless, through chromedp) against a real central,
// a real agent and simulated RTSP cameras on loopback: what operators,
// officers and auditors do in the browser, and the audit records it must
// leave. It also holds the console's benchmarks (time to first frame,
// latency added between agent and browser, CPU per viewer).
package consoletest
