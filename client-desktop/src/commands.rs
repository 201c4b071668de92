//! The page's commands: each forwards to [`hearth_app::App`]. Arguments are snake_case on the
//! JavaScript side too (`rename_all`), matching the generated bindings.

use hearth_app::App;
use hearth_app::api::*;
use tauri::State;

type Res<T> = Result<T, UiError>;

pub fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        app_info,
        get_settings,
        save_settings,
        list_devices,
        frame_server,
        start_preview,
        stop_preview,
        test_speaker,
        get_view,
        get_chat,
        join,
        leave,
        set_muted,
        set_camera,
        start_screen_share,
        stop_screen_share,
        send_chat,
        react,
        raise_hand,
        add_test_participant,
        remove_test_participant,
        dismiss_notice,
        save_diagnostics,
        pending_invite,
        report_paint,
        ui_ready,
        ui_error,
        open_link,
        crate::frame_path::frame_path_channel,
        crate::frame_path::frame_path_feed,
        crate::frame_path::frame_path_report,
    ]
}

#[tauri::command(rename_all = "snake_case")]
fn app_info(app: State<'_, App>) -> AppInfo {
    app.info()
}

#[tauri::command(rename_all = "snake_case")]
fn get_settings(app: State<'_, App>) -> Settings {
    app.settings()
}

#[tauri::command(rename_all = "snake_case")]
fn save_settings(app: State<'_, App>, settings: Settings) -> Res<()> {
    app.save_settings(&settings)
}

#[tauri::command(rename_all = "snake_case")]
async fn list_devices(app: State<'_, App>) -> Res<Devices> {
    let app = app.inner().clone();
    // Device enumeration can block (sound server start-up): keep it off the IPC thread.
    tokio::task::spawn_blocking(move || app.devices())
        .await
        .map_err(|e| hearth_app::errors::ui(ErrorKind::Internal, "Devices could not be listed", "Try again.", e.to_string()))
}

#[tauri::command(rename_all = "snake_case")]
fn frame_server(app: State<'_, App>) -> FrameServerInfo {
    app.frame_server()
}

#[tauri::command(rename_all = "snake_case")]
async fn start_preview(
    app: State<'_, App>,
    camera: Option<String>,
    microphone: Option<String>,
    camera_on: bool,
    mic_on: bool,
) -> Res<()> {
    app.start_preview(camera, microphone, camera_on, mic_on);
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
fn stop_preview(app: State<'_, App>) {
    app.stop_preview();
}

#[tauri::command(rename_all = "snake_case")]
async fn test_speaker(app: State<'_, App>, speaker: Option<String>) -> Res<()> {
    app.test_speaker(speaker).await
}

#[tauri::command(rename_all = "snake_case")]
fn get_view(app: State<'_, App>) -> View {
    app.view()
}

#[tauri::command(rename_all = "snake_case")]
fn get_chat(app: State<'_, App>) -> Vec<ChatEntry> {
    app.chat()
}

#[tauri::command(rename_all = "snake_case")]
async fn join(app: State<'_, App>, request: JoinRequest) -> Res<()> {
    app.join(request).await
}

#[tauri::command(rename_all = "snake_case")]
async fn leave(app: State<'_, App>) -> Res<()> {
    app.leave().await;
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
fn set_muted(app: State<'_, App>, muted: bool) -> Res<()> {
    app.set_muted(muted)
}

#[tauri::command(rename_all = "snake_case")]
fn set_camera(app: State<'_, App>, on: bool) -> Res<()> {
    app.set_camera(on)
}

#[tauri::command(rename_all = "snake_case")]
fn start_screen_share(app: State<'_, App>, screen: Option<String>) -> Res<()> {
    app.start_screen_share(screen)
}

#[tauri::command(rename_all = "snake_case")]
fn stop_screen_share(app: State<'_, App>) -> Res<()> {
    app.stop_screen_share()
}

#[tauri::command(rename_all = "snake_case")]
fn send_chat(app: State<'_, App>, text: String, to: Option<String>) -> Res<()> {
    app.send_chat(text, to)
}

#[tauri::command(rename_all = "snake_case")]
fn react(app: State<'_, App>, emoji: String) -> Res<()> {
    app.react(emoji)
}

#[tauri::command(rename_all = "snake_case")]
fn raise_hand(app: State<'_, App>, raised: bool) -> Res<()> {
    app.raise_hand(raised)
}

#[tauri::command(rename_all = "snake_case")]
async fn add_test_participant(app: State<'_, App>) -> Res<()> {
    app.add_test_participant().await
}

#[tauri::command(rename_all = "snake_case")]
async fn remove_test_participant(app: State<'_, App>) -> Res<()> {
    app.remove_test_participant().await;
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
fn dismiss_notice(app: State<'_, App>, id: u64) {
    app.dismiss_notice(id);
}

#[tauri::command(rename_all = "snake_case")]
async fn save_diagnostics(app: State<'_, App>) -> Res<String> {
    app.save_diagnostics(None).await.map(|p| p.display().to_string())
}

#[tauri::command(rename_all = "snake_case")]
fn pending_invite(app: State<'_, App>) -> Option<Invite> {
    app.take_pending_invite()
}

#[tauri::command(rename_all = "snake_case")]
fn report_paint(app: State<'_, App>, tiles: Vec<TilePaint>) {
    app.report_paint(tiles);
}

/// The page has painted its first screen (for the launch-time figure).
#[tauri::command(rename_all = "snake_case")]
fn ui_ready(app: State<'_, App>) {
    app.ui_ready();
}

#[tauri::command(rename_all = "snake_case")]
fn ui_error(app: State<'_, App>, message: String, stack: String) {
    app.ui_error(&message, &stack);
}

/// Open an http(s) link from chat in the system browser.
#[tauri::command(rename_all = "snake_case")]
fn open_link(handle: tauri::AppHandle, url: String) -> Res<()> {
    use tauri_plugin_opener::OpenerExt;
    let ok = url.starts_with("https://") || url.starts_with("http://");
    if !ok {
        return Err(hearth_app::errors::ui(ErrorKind::InvalidInput, "Not a web link", "Only http and https links open.", url));
    }
    handle.opener().open_url(url, None::<&str>).map_err(|e| {
        hearth_app::errors::ui(ErrorKind::Internal, "The link could not be opened", "Copy it into your browser.", e.to_string())
    })
}
