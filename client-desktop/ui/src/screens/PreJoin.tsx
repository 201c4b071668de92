// The pre-join screen: who you are, where to meet, which devices, a live camera preview and
// microphone meter; then the named waits of joining and, if it fails, what went wrong and what
// to do next. Shown for the phases idle, left and failed, and during the joining waits.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { RefObject } from 'preact';
import { api, asUiError, signalReady } from '../api';
import type { AppInfo, AudioProcessing, Devices, JoinRequest, Settings, UiError, View } from '../bindings';
import { ErrorCard } from '../components/ErrorCard';
import { CameraIcon, MicIcon, RefreshIcon, SpeakerIcon } from '../components/icons';
import { Video } from '../components/Video';
import { FIELD_LABEL, nextStep } from '../errors';
import type { FormField } from '../errors';
import { useHearthEvent } from '../events';
import { deviceLabel, hasRealDevice, initials, pickDevice } from '../format';
import type { DeviceKind } from '../format';

interface Form {
  name: string;
  room: string;
  server: string;
  password: string;
  camera: string | null;
  microphone: string | null;
  speaker: string | null;
  camera_on: boolean;
  mic_on: boolean;
  audio: AudioProcessing;
}

const AUDIO_DEFAULT: AudioProcessing = { echo_cancellation: true, noise_suppression: true, gain_control: true };

/** The sound-processing switches, in the order shown. */
const AUDIO_SWITCHES: { key: keyof AudioProcessing; label: string; hint: string; testid: string }[] = [
  { key: 'echo_cancellation', label: 'Echo cancellation', hint: 'Others do not hear themselves through your speakers.', testid: 'aec' },
  { key: 'noise_suppression', label: 'Noise suppression', hint: 'Steady background noise (fans, traffic) is removed.', testid: 'ns' },
  { key: 'gain_control', label: 'Automatic gain', hint: 'Your voice is kept at an even level.', testid: 'agc' },
];

const NO_DEVICES: Devices = { cameras: [], microphones: [], speakers: [], screens: [], problems: [] };

const WAIT_LABEL: Record<string, string> = {
  starting: 'Getting ready…',
  starting_server: 'Starting the local server…',
  connecting: 'Connecting to server…',
  joining: 'Joining the room…',
};

export function canJoin(f: Form): boolean {
  return f.name.trim() !== '' && f.room.trim() !== '';
}

function toSettings(f: Form): Settings {
  return {
    name: f.name.trim(),
    room: f.room.trim(),
    server: f.server.trim(),
    camera: f.camera,
    microphone: f.microphone,
    speaker: f.speaker,
    camera_on: f.camera_on,
    mic_on: f.mic_on,
    audio: f.audio,
  };
}

function toRequest(f: Form): JoinRequest {
  return { ...toSettings(f), password: f.password === '' ? null : f.password };
}

/** Which preview problem a failure is about. */
function previewSlot(e: UiError): 'camera' | 'microphone' {
  return e.kind.startsWith('camera') ? 'camera' : 'microphone';
}

export function PreJoin({ view, info }: { view: View; info: AppInfo | null }) {
  const [form, setForm] = useState<Form | null>(null);
  const [devices, setDevices] = useState<Devices>(NO_DEVICES);
  const [devicesError, setDevicesError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [joinError, setJoinError] = useState<UiError | null>(null);
  const [previewErrors, setPreviewErrors] = useState<{ camera?: UiError; microphone?: UiError }>({});
  const alive = useRef(true);
  const fields = {
    name: useRef<HTMLInputElement>(null),
    room: useRef<HTMLInputElement>(null),
    server: useRef<HTMLInputElement>(null),
    password: useRef<HTMLInputElement>(null),
    camera: useRef<HTMLSelectElement>(null),
    microphone: useRef<HTMLSelectElement>(null),
    speaker: useRef<HTMLSelectElement>(null),
  } satisfies Record<FormField, RefObject<HTMLInputElement | HTMLSelectElement>>;

  useEffect(() => {
    alive.current = true;
    Promise.all([
      api.getSettings().catch((e) => {
        console.warn('get_settings failed', e);
        return null;
      }),
      api.listDevices().catch((e) => {
        setDevicesError(asUiError(e));
        return NO_DEVICES;
      }),
      api.pendingInvite().catch(() => null),
    ]).then(([settings, devs, invite]) => {
      if (!alive.current) return;
      setDevices(devs);
      setForm({
        name: settings?.name ?? '',
        room: invite?.room ?? settings?.room ?? '',
        server: invite ? invite.server : (settings?.server ?? ''),
        password: '',
        camera: pickDevice(devs.cameras, settings?.camera ?? null),
        microphone: pickDevice(devs.microphones, settings?.microphone ?? null),
        speaker: pickDevice(devs.speakers, settings?.speaker ?? null),
        camera_on: settings?.camera_on ?? true,
        mic_on: settings?.mic_on ?? true,
        audio: { ...AUDIO_DEFAULT, ...(settings?.audio ?? {}) },
      });
    });
    return () => {
      alive.current = false;
    };
  }, []);

  // Put the cursor where it is needed first: the name, else the room.
  const focusedOnce = useRef(false);
  useEffect(() => {
    if (!form || focusedOnce.current) return;
    focusedOnce.current = true;
    signalReady();
    (form.name === '' ? fields.name : form.room === '' ? fields.room : fields.name).current?.focus();
  }, [form]);

  const phase = view.phase;
  const waiting = phase.phase === 'starting_server' || phase.phase === 'connecting' || phase.phase === 'joining';
  const locked = busy || waiting;

  // The preview runs while the form is usable, with the devices and switches it shows.
  const previewKey = form && !locked ? JSON.stringify([form.camera, form.microphone, form.camera_on, form.mic_on]) : null;
  useEffect(() => {
    if (!form || previewKey === null) return;
    setPreviewErrors({});
    if (!form.camera_on && !form.mic_on) {
      api.stopPreview().catch((e) => console.warn('stop_preview failed', e));
      return;
    }
    api
      .startPreview({ camera: form.camera, microphone: form.microphone, camera_on: form.camera_on, mic_on: form.mic_on })
      .catch((e) => {
        const err = asUiError(e);
        if (alive.current) setPreviewErrors((p) => ({ ...p, [previewSlot(err)]: err }));
      });
  }, [previewKey]);

  useHearthEvent('preview_error', (e) => {
    setPreviewErrors((p) => ({ ...p, [previewSlot(e.error)]: e.error }));
  });

  if (!form) {
    return (
      <main class="prejoin" data-testid="prejoin" aria-busy="true">
        <p class="loading">Loading your settings…</p>
      </main>
    );
  }

  const update = (patch: Partial<Form>) => setForm((f) => (f ? { ...f, ...patch } : f));

  async function join(override?: Partial<Form>) {
    if (!form || locked) return;
    const f = { ...form, ...override };
    if (override) setForm(f);
    if (!canJoin(f)) return;
    setBusy(true);
    setJoinError(null);
    api.saveSettings(toSettings(f)).catch((e) => console.warn('save_settings failed', e));
    // Free the camera and microphone for the call (a camera is often single-open).
    await api.stopPreview().catch(() => undefined);
    try {
      await api.join(toRequest(f));
    } catch (e) {
      if (alive.current) setJoinError(asUiError(e));
    } finally {
      if (alive.current) setBusy(false);
    }
  }

  async function refreshDevices() {
    try {
      const devs = await api.listDevices();
      setDevices(devs);
      setDevicesError(null);
      update({
        camera: pickDevice(devs.cameras, form?.camera ?? null),
        microphone: pickDevice(devs.microphones, form?.microphone ?? null),
        speaker: pickDevice(devs.speakers, form?.speaker ?? null),
      });
    } catch (e) {
      setDevicesError(asUiError(e));
    }
  }

  const shownError: UiError | null = locked ? null : phase.phase === 'failed' ? phase.error : joinError;
  const waitPhase = waiting ? phase.phase : busy ? 'starting' : null;
  const step = shownError ? nextStep(shownError.kind) : null;
  const focus = (field: FormField) => fields[field].current?.focus();

  return (
    <main class="prejoin" data-testid="prejoin">
      <div class="prejoin-inner">
        <h1 class="brand">Hearth</h1>
        <section class="prejoin-media" aria-label="Camera and microphone check">
          <div class="preview" data-testid="preview" data-camera-on={form.camera_on ? 'true' : 'false'}>
            {form.camera_on && !locked && !previewErrors.camera ? (
              <Video
                tile="preview"
                fit="cover"
                placeholder={<span class="placeholder-text">Waiting for the camera…</span>}
              />
            ) : (
              <div class="video-placeholder">
                <div class="avatar">{initials(form.name)}</div>
                <span class="placeholder-text">
                  {locked ? 'Joining…' : previewErrors.camera ? previewErrors.camera.title : 'Camera is off'}
                </span>
              </div>
            )}
            <div class="preview-toggles">
              <button
                type="button"
                class={'round-button' + (form.mic_on ? '' : ' off')}
                data-testid="prejoin-mic-toggle"
                aria-label="Join with microphone on"
                aria-pressed={form.mic_on ? 'true' : 'false'}
                title={form.mic_on ? 'Microphone on: click to join muted' : 'Microphone off: click to turn it on'}
                disabled={locked}
                onClick={() => update({ mic_on: !form.mic_on })}
              >
                <MicIcon off={!form.mic_on} />
              </button>
              <button
                type="button"
                class={'round-button' + (form.camera_on ? '' : ' off')}
                data-testid="prejoin-camera-toggle"
                aria-label="Join with camera on"
                aria-pressed={form.camera_on ? 'true' : 'false'}
                title={form.camera_on ? 'Camera on: click to join with the camera off' : 'Camera off: click to turn it on'}
                disabled={locked}
                onClick={() => update({ camera_on: !form.camera_on })}
              >
                <CameraIcon off={!form.camera_on} />
              </button>
            </div>
          </div>
          <MicMeter on={form.mic_on && !locked} />
          {previewErrors.camera ? <ErrorCard error={previewErrors.camera} testid="preview-error" compact /> : null}
          {previewErrors.microphone ? <ErrorCard error={previewErrors.microphone} testid="preview-error" compact /> : null}
        </section>

        <form
          class="join-form"
          onSubmit={(e) => {
            e.preventDefault();
            void join();
          }}
        >
          {phase.phase === 'left' && !locked ? (
            <p class="info-line" data-testid="left" role="status">
              {phase.reason || 'You left the call.'}
            </p>
          ) : null}

          {waitPhase ? (
            <div class="progress" data-testid="progress" data-phase={waitPhase} role="status" aria-live="polite">
              <span class="spinner" aria-hidden="true" />
              <span class="progress-text">
                {WAIT_LABEL[waitPhase]}
                {phase.phase === 'connecting' ? <span class="progress-server"> {phase.server}</span> : null}
              </span>
              <button type="button" class="link-button" data-testid="cancel-join" onClick={() => api.leave().catch(() => undefined)}>
                Cancel
              </button>
            </div>
          ) : null}

          {shownError && step ? (
            <ErrorCard error={shownError}>
              {step.retry ? (
                <button type="button" class="button primary" data-testid="retry" onClick={() => void join()}>
                  Try again
                </button>
              ) : null}
              {step.withoutCamera && form.camera_on ? (
                <button type="button" class="button" onClick={() => void join({ camera_on: false })}>
                  Join without camera
                </button>
              ) : null}
              {step.withoutMic && form.mic_on ? (
                <button type="button" class="button" onClick={() => void join({ mic_on: false })}>
                  Join without microphone
                </button>
              ) : null}
              {step.field ? (
                <button type="button" class="button" data-testid="edit-field" onClick={() => focus(step.field as FormField)}>
                  {step.field === 'camera' || step.field === 'microphone' || step.field === 'speaker'
                    ? `Choose another ${FIELD_LABEL[step.field]}`
                    : `Edit the ${FIELD_LABEL[step.field]}`}
                </button>
              ) : null}
            </ErrorCard>
          ) : null}

          {/* Text fields update on "input" and "change": WebDriver's Element Clear fires only the latter. */}
          <fieldset disabled={locked}>
            <label class="field">
              <span>Your name</span>
              <input
                ref={fields.name}
                data-testid="name"
                value={form.name}
                maxLength={64}
                autocomplete="name"
                required
                onInput={(e) => update({ name: e.currentTarget.value })}
                onChange={(e) => update({ name: e.currentTarget.value })}
              />
            </label>
            <label class="field">
              <span>Room</span>
              <input
                ref={fields.room}
                data-testid="room"
                value={form.room}
                maxLength={64}
                required
                spellcheck={false}
                onInput={(e) => update({ room: e.currentTarget.value })}
                onChange={(e) => update({ room: e.currentTarget.value })}
              />
            </label>
            <label class="field">
              <span>Server</span>
              <input
                ref={fields.server}
                data-testid="server"
                value={form.server}
                placeholder="Local server (this computer)"
                spellcheck={false}
                autocomplete="url"
                onInput={(e) => update({ server: e.currentTarget.value })}
                onChange={(e) => update({ server: e.currentTarget.value })}
              />
              <small class="hint">Empty: a server on this computer. Or a ws:// or wss:// address.</small>
            </label>
            <label class="field">
              <span>Password</span>
              <input
                ref={fields.password}
                data-testid="password"
                type="password"
                value={form.password}
                placeholder="Optional"
                autocomplete="off"
                maxLength={256}
                onInput={(e) => update({ password: e.currentTarget.value })}
                onChange={(e) => update({ password: e.currentTarget.value })}
              />
            </label>

            <div class="device-grid">
              <DevicePicker
                kind="camera"
                label="Camera"
                testid="camera-select"
                selectRef={fields.camera}
                devices={devices.cameras}
                value={form.camera}
                onChange={(camera) => update({ camera })}
              />
              <DevicePicker
                kind="microphone"
                label="Microphone"
                testid="mic-select"
                selectRef={fields.microphone}
                devices={devices.microphones}
                value={form.microphone}
                onChange={(microphone) => update({ microphone })}
              />
              <div class="speaker-row">
                <DevicePicker
                  kind="speaker"
                  label="Speaker"
                  testid="speaker-select"
                  selectRef={fields.speaker}
                  devices={devices.speakers}
                  value={form.speaker}
                  onChange={(speaker) => update({ speaker })}
                />
                <SpeakerTest speaker={form.speaker} />
              </div>
            </div>
            <fieldset class="sound-processing" data-testid="sound-processing">
              <legend>Sound (applies when you join)</legend>
              {AUDIO_SWITCHES.map((s) => (
                <label class="check" key={s.key} title={s.hint}>
                  <input
                    type="checkbox"
                    data-testid={s.testid}
                    checked={form.audio[s.key]}
                    onChange={(e) => update({ audio: { ...form.audio, [s.key]: e.currentTarget.checked } })}
                  />
                  <span>{s.label}</span>
                </label>
              ))}
            </fieldset>
            <div class="device-tools">
              <button type="button" class="link-button" onClick={() => void refreshDevices()} data-testid="refresh-devices">
                <RefreshIcon /> Refresh devices
              </button>
            </div>
            {devices.problems.length > 0 ? (
              <ul class="device-problems" data-testid="device-problems">
                {devices.problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            ) : null}
            {devicesError ? <ErrorCard error={devicesError} testid="devices-error" compact /> : null}
          </fieldset>

          <button type="submit" class="button primary join-button" data-testid="join" disabled={locked || !canJoin(form)}>
            {locked ? 'Joining…' : 'Join'}
          </button>
          {info ? (
            <p class="about">
              Hearth {info.version} · protocol {info.protocol}
            </p>
          ) : null}
        </form>
      </div>
    </main>
  );
}

function DevicePicker({
  kind,
  label,
  testid,
  devices,
  value,
  onChange,
  selectRef,
}: {
  kind: DeviceKind;
  label: string;
  testid: string;
  devices: Devices['cameras'];
  value: string | null;
  onChange: (id: string | null) => void;
  selectRef: RefObject<HTMLSelectElement>;
}) {
  return (
    <label class="field">
      <span>{label}</span>
      <select
        ref={selectRef}
        data-testid={testid}
        value={value ?? ''}
        onChange={(e) => onChange(e.currentTarget.value === '' ? null : e.currentTarget.value)}
      >
        {!hasRealDevice(devices) ? <option value="">None found (system default)</option> : null}
        {devices.map((d) => (
          <option key={d.id} value={d.id}>
            {deviceLabel(kind, d)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The pre-join microphone meter, fed by `preview_level` events. */
function MicMeter({ on }: { on: boolean }) {
  const [level, setLevel] = useState(0);
  useHearthEvent('preview_level', (e) => setLevel(e.level));
  useEffect(() => {
    if (!on) setLevel(0);
  }, [on]);
  const pct = Math.round(Math.max(0, Math.min(1, on ? level : 0)) * 100);
  return (
    <div class="mic-meter-row">
      <MicIcon off={!on} />
      <div
        class="mic-meter"
        data-testid="mic-meter"
        role="meter"
        aria-label="Microphone level"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        data-level={pct}
      >
        <div class="mic-meter-fill" style={{ width: pct + '%' }} />
      </div>
      <span class="mic-meter-label">{on ? (pct > 3 ? 'We hear you' : 'Say something…') : 'Microphone off'}</span>
    </div>
  );
}

function SpeakerTest({ speaker }: { speaker: string | null }) {
  const [state, setState] = useState<'idle' | 'playing' | 'played'>('idle');
  const [error, setError] = useState<UiError | null>(null);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );
  async function play() {
    setState('playing');
    setError(null);
    try {
      await api.testSpeaker(speaker);
      if (alive.current) setState('played');
    } catch (e) {
      if (alive.current) {
        setError(asUiError(e));
        setState('idle');
      }
    }
  }
  return (
    <div class="speaker-test">
      <button
        type="button"
        class="button"
        data-testid="test-speaker"
        data-state={state}
        disabled={state === 'playing'}
        onClick={() => void play()}
        title="Plays a short chime on the chosen speaker"
      >
        <SpeakerIcon /> {state === 'playing' ? 'Playing…' : 'Test speaker'}
      </button>
      {state === 'played' ? <small class="hint">Did you hear a chime? If not, pick another speaker.</small> : null}
      {error ? <ErrorCard error={error} compact /> : null}
    </div>
  );
}
