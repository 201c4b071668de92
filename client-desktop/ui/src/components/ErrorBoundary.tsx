// The recover screen: shown instead of the page when a component throws or an error goes
// unhandled. "Reload" remounts the page, which asks Rust for the current View and chat again
// (the call itself runs in Rust and is not affected).

import { Component, Fragment } from 'preact';
import type { ComponentChildren } from 'preact';
import { describe, onCrash, reportCrash } from '../crash';
import type { Crash } from '../crash';

interface State {
  crash: Crash | null;
  /** Bumped by "Reload" so the children mount afresh. */
  generation: number;
}

export class ErrorBoundary extends Component<{ children: ComponentChildren }, State> {
  state: State = { crash: null, generation: 0 };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return { crash: describe(error) };
  }

  componentDidMount() {
    onCrash((crash) => this.setState({ crash }));
  }

  componentWillUnmount() {
    onCrash(null);
  }

  componentDidCatch(error: unknown) {
    reportCrash(describe(error));
  }

  private reload = () => {
    this.setState((s) => ({ crash: null, generation: s.generation + 1 }));
  };

  render() {
    const { crash, generation } = this.state;
    if (crash) {
      return (
        <div class="crash" data-testid="error-boundary" role="alert">
          <div class="crash-card">
            <h1>Something went wrong</h1>
            <p>This window hit a problem it could not handle. Your call is not affected: reload the window to get back to it.</p>
            <div class="crash-actions">
              <button type="button" class="button primary" data-testid="error-boundary-reload" onClick={this.reload}>
                Reload
              </button>
              <button type="button" class="button" onClick={() => location.reload()}>
                Reload the whole page
              </button>
            </div>
            <details class="error-detail">
              <summary>Details</summary>
              <pre>
                {crash.message}
                {crash.stack ? '\n' + crash.stack : ''}
              </pre>
            </details>
          </div>
        </div>
      );
    }
    return <Fragment key={generation}>{this.props.children}</Fragment>;
  }
}
