package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// serverSample is what the tool reads of the server's /metrics.
type serverSample struct {
	RSSBytes   float64
	Goroutines float64
}

// scrapeMetrics reads the process's resident memory and goroutines from a
// Prometheus text exposition.
func scrapeMetrics(ctx context.Context, hc *http.Client, metricsURL string) (serverSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return serverSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return serverSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverSample{}, fmt.Errorf("%s answered %d (is /metrics on another listener? see -metrics-url)", metricsURL, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxResponseBytes))
}

func parseMetrics(r io.Reader) (serverSample, error) {
	var s serverSample
	var rss, goroutines bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.RSSBytes, rss = v, true
		case "go_goroutines":
			s.Goroutines, goroutines = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if !rss || !goroutines {
		return s, fmt.Errorf("no process_resident_memory_bytes or go_goroutines in the metrics")
	}
	return s, nil
}
