// What the page offers as the next step for each kind of failure.

import type { ErrorKind } from './bindings';

export type FormField = 'name' | 'room' | 'server' | 'password' | 'camera' | 'microphone' | 'speaker';

export interface NextStep {
  /** The form field to put the cursor in (and name in the button). */
  field?: FormField;
  /** Joining again as is may work (the cause may be gone). */
  retry: boolean;
  /** Offer to join with that device off. */
  withoutCamera?: boolean;
  withoutMic?: boolean;
}

export function nextStep(kind: ErrorKind): NextStep {
  switch (kind) {
    case 'wrong_password':
    case 'password_required':
      return { field: 'password', retry: false };
    case 'bad_server_url':
      return { field: 'server', retry: false };
    case 'name_taken':
      return { field: 'name', retry: false };
    case 'invalid_input':
      return { field: 'name', retry: false };
    case 'room_full':
      return { field: 'room', retry: true };
    case 'server_unreachable':
      return { field: 'server', retry: true };
    case 'camera_missing':
    case 'camera_busy':
    case 'camera_denied':
    case 'camera_lost':
      return { field: 'camera', retry: true, withoutCamera: true };
    case 'no_microphone':
    case 'microphone_busy':
    case 'microphone_denied':
    case 'microphone_lost':
      return { field: 'microphone', retry: true, withoutMic: true };
    case 'no_speaker':
      return { field: 'speaker', retry: true };
    case 'too_many_attempts':
    case 'token_refused':
    case 'version_mismatch':
    case 'screen_share_failed':
    case 'peer_unreachable':
    case 'embedded_server_failed':
    case 'internal':
      return { retry: true };
  }
}

export const FIELD_LABEL: Record<FormField, string> = {
  name: 'name',
  room: 'room',
  server: 'server',
  password: 'password',
  camera: 'camera',
  microphone: 'microphone',
  speaker: 'speaker',
};
