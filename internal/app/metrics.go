package app

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/metrics"
)

// newMetrics returns the process's registry: the Go runtime and process
// collectors, the database pool and the event bus's waiters. `serve` adds
// its HTTP metrics; `worker` serves these alone (METRICS_ADDR).
func newMetrics(bdb *bun.DB, bus *events.Bus) *prometheus.Registry {
	r := metrics.NewRegistry()
	reg := promauto.With(r)
	if bdb != nil {
		stat := func(f func(st sql.DBStats) float64) func() float64 {
			return func() float64 { return f(bdb.Stats()) }
		}
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_db_open_connections", Help: "Open database connections."}, stat(func(st sql.DBStats) float64 { return float64(st.OpenConnections) }))
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_db_in_use_connections", Help: "Database connections in use."}, stat(func(st sql.DBStats) float64 { return float64(st.InUse) }))
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_db_idle_connections", Help: "Idle database connections."}, stat(func(st sql.DBStats) float64 { return float64(st.Idle) }))
		reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_db_max_open_connections", Help: "Largest number of database connections allowed."}, stat(func(st sql.DBStats) float64 { return float64(st.MaxOpenConnections) }))
		reg.NewCounterFunc(prometheus.CounterOpts{Name: "fastimage_db_wait_count_total", Help: "Times a request waited for a free database connection."}, stat(func(st sql.DBStats) float64 { return float64(st.WaitCount) }))
		reg.NewCounterFunc(prometheus.CounterOpts{Name: "fastimage_db_wait_seconds_total", Help: "Time spent waiting for a free database connection."}, stat(func(st sql.DBStats) float64 { return st.WaitDuration.Seconds() }))
	}
	reg.NewGaugeFunc(prometheus.GaugeOpts{Name: "fastimage_event_waiters", Help: "Subscriptions and workers waiting for a doorbell in this process."}, func() float64 { return float64(bus.Waiters()) })
	return r
}
