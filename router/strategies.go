package router

// BuiltinStrategies lists the routing strategies compiled into xroute.
// Adding a strategy is one new file (strategy_<name>.go, its type and
// constructor) plus one line here.
func BuiltinStrategies() Strategies {
	return Strategies{
		"priority": newPriority,
		"cost":     newCost,
		"latency":  newLatency,
		"balanced": newBalanced,
	}
}
