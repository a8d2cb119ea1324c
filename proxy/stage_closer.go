package proxy

import "context"

// StageCloser is an optional Stage capability for a fault that must end
// the connection on its own clock rather than from Forward (idle_kill:
// nothing arrives while the connection is idle, so Forward is never
// called). BindClose is called once, when the verdict attaches the
// stage, with the connection's context (done when it ends) and a
// function that closes it as a Cut would.
type StageCloser interface {
	BindClose(ctx context.Context, close func(*Cut))
}

// attachStages adds a verdict's stages to their directions, then binds
// the StageClosers among them.
func (s *session) attachStages(stages []DirectedStage) {
	if len(stages) == 0 {
		return
	}
	s.mu.Lock()
	for _, ds := range stages {
		s.stages[ds.Dir] = append(s.stages[ds.Dir], ds.Stage)
	}
	s.mu.Unlock()
	s.bindStageClosers(stages)
}

// bindStageClosers gives each StageCloser among stages its close.
func (s *session) bindStageClosers(stages []DirectedStage) {
	for _, ds := range stages {
		sc, ok := ds.Stage.(StageCloser)
		if !ok {
			continue
		}
		dir := ds.Dir
		sc.BindClose(s.ctx, func(c *Cut) {
			if s.ctx.Err() == nil {
				s.cut(dir, c)
			}
		})
	}
}
