package generate

// AppendEvent lets the benchmarks, in package generate_test, write events
// as the workers do.
var AppendEvent = appendEvent
