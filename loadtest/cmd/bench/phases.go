package main

import "strings"

// Phase names. The first four are the bench's original phases and keep
// their names and meaning (money off); the others add the plain requests
// of the Responses and Messages APIs, the money-on variant of every
// phase ("-paid": a priced model and a funded account, so that xroute
// holds, settles and writes the ledger on every request) and the
// many-streams phase (memory at -many-streams concurrent streams).
const (
	phaseNonStream            = "nonstream"
	phaseStream               = "stream"
	phaseResponses            = "responses"
	phaseResponsesStream      = "responses-stream"
	phaseMessages             = "messages"
	phaseMessagesStream       = "messages-stream"
	phaseManyStreams          = "many-streams"
	paidSuffix                = "-paid"
	apiChat, apiResp, apiMsgs = "chat", "responses", "messages"
)

// phaseSpec is what a phase sends and how.
type phaseSpec struct {
	name   string
	api    string // apiChat, apiResp or apiMsgs
	stream bool
	paid   bool // the priced model: xroute holds and settles credit
	many   bool // -many-streams concurrent streams instead of -streams
}

// freeName is the phase's money-off name (the phase itself when it is).
func (p phaseSpec) freeName() string { return strings.TrimSuffix(p.name, paidSuffix) }

// baseSpecs are the money-off phases in their default order.
func baseSpecs() []phaseSpec {
	return []phaseSpec{
		{name: phaseNonStream, api: apiChat},
		{name: phaseStream, api: apiChat, stream: true},
		{name: phaseResponses, api: apiResp},
		{name: phaseResponsesStream, api: apiResp, stream: true},
		{name: phaseMessages, api: apiMsgs},
		{name: phaseMessagesStream, api: apiMsgs, stream: true},
	}
}

// allSpecs are every phase in the default order: each money-off phase
// followed by its money-on twin, then many-streams.
func allSpecs() []phaseSpec {
	var out []phaseSpec
	for _, s := range baseSpecs() {
		paid := s
		paid.name, paid.paid = s.name+paidSuffix, true
		out = append(out, s, paid)
	}
	return append(out, phaseSpec{name: phaseManyStreams, api: apiChat, stream: true, many: true})
}

// knownPhases are the phases in their default order.
func knownPhases() []string {
	var names []string
	for _, s := range allSpecs() {
		names = append(names, s.name)
	}
	return names
}

// specOf returns the spec of a phase name (the zero spec, a chat
// non-stream one, for an unknown name: validate refuses those first).
func specOf(phase string) phaseSpec {
	for _, s := range allSpecs() {
		if s.name == phase {
			return s
		}
	}
	return phaseSpec{name: phase, api: apiChat}
}

// streaming reports whether a phase is a closed loop of streams.
func streaming(phase string) bool { return specOf(phase).stream }

// runsIn reports whether target takes part in phase: xroute-translated
// differs from xroute only on the Responses and the Messages API.
func runsIn(target, phase string) bool {
	return target != targetXrouteTranslated || specOf(phase).api != apiChat
}

// chatPhase reports whether phase is one of the money-off chat phases:
// a target that fails its smoke test there is out of every phase.
func chatPhase(phase string) bool { return phase == phaseNonStream || phase == phaseStream }
