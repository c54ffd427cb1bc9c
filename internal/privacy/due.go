package privacy

import "time"

// DueDate is one calendar month after received, in UTC: the same day of the
// next month, or its last day when that month is shorter (31 January →
// 28 or 29 February), at the same time of day.
func DueDate(received time.Time) time.Time {
	t := received.UTC()
	y, m, d := t.Date()
	first := time.Date(y, m+1, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// Extended is a due date extended once, by two further months (the most
// the law allows for complex requests).
func Extended(due time.Time) time.Time { return DueDate(DueDate(due)) }
