//! The decision table, case by case, without an API server.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;

use super::*;
use crate::backup::Plan;
use crate::desired::RotationReason;
use crate::reconcile::events;
use crate::reconcile::observe::Target;
use kube::runtime::events::EventType;

use crate::fixtures::key;

fn ring(bytes: &[u8]) -> Keyring {
    Keyring::new(bytes.iter().map(|b| key(*b)).collect()).unwrap()
}

fn id(b: u8) -> KeyId {
    key(b).id()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn skr() -> SecretKeyring {
    let mut k = SecretKeyring::new("agents", SecretKeyringSpec::default());
    k.metadata.namespace = Some("print".into());
    k
}

/// A status recording these keys as handed out, created as `secret_name`.
fn recorded(seeds: &[u8], secret_name: &str) -> KeyringStatus {
    crate::fixtures::recorded(seeds, secret_name)
}

fn master_of(r: &Keyring) -> Master {
    Master {
        secret: Secret::default(),
        ring: r.clone(),
        meta: KeyMeta::initial(r, None, at("2026-01-01T00:00:00Z")),
    }
}

fn seen<'a>(
    master: Option<&'a Master>,
    status: Option<&'a KeyringStatus>,
    labelled: &'a [String],
) -> Seen<'a> {
    Seen {
        secret_name: "agents",
        place: "print/agents",
        master,
        status,
        labelled,
        restore_from: None,
        accept_missing: None,
    }
}

fn hold_reason(d: &Decision) -> Option<&'static str> {
    match &d.next {
        Next::Hold(h) => Some(h.invalid().reason),
        _ => None,
    }
}

#[test]
fn a_new_keyring_with_nothing_handed_out_is_created() {
    let d = keyring(&seen(None, None, &[]));
    assert_eq!(d, Decision { accept: Accept::Absent, next: Next::Create });
    assert_eq!(d.guard_gauge(), Some(None));
}

#[test]
fn an_existing_master_holding_every_recorded_key_converges() {
    let m = master_of(&ring(&[1, 2]));
    let st = recorded(&[1, 2], "agents");
    let d = keyring(&seen(Some(&m), Some(&st), &[]));
    assert_eq!(d.next, Next::Converge);
    assert_eq!(d.guard_gauge(), Some(None));
}

#[test]
fn a_missing_master_whose_keys_were_handed_out_is_held() {
    // The status records keys.
    let st = recorded(&[1], "agents");
    let d = keyring(&seen(None, Some(&st), &[]));
    assert_eq!(hold_reason(&d), Some("MasterMissing"));
    assert_eq!(d.guard_gauge(), Some(Some("MasterMissing")));
    // Copies exist, with no status at all.
    let copies = vec!["team-a/agents".to_owned()];
    let d = keyring(&seen(None, None, &copies));
    let Next::Hold(h) = &d.next else { panic!("held") };
    assert_eq!(h.guard(), Some(&Guard::MasterMissing { copies: copies.clone() }));
    assert!(h.invalid().message.contains("print/agents"), "{:?}", h.invalid());
}

#[test]
fn a_changed_secret_name_is_held_before_anything_else() {
    let m = master_of(&ring(&[1]));
    let st = recorded(&[1, 2], "old-name");
    let d = keyring(&seen(Some(&m), Some(&st), &[]));
    assert_eq!(hold_reason(&d), Some("SecretNameChanged"));
}

#[test]
fn a_master_lacking_a_handed_out_key_is_held() {
    let m = master_of(&ring(&[2]));
    let st = recorded(&[1, 2], "agents");
    let d = keyring(&seen(Some(&m), Some(&st), &[]));
    assert_eq!(hold_reason(&d), Some("KeysMissing"));
}

#[test]
fn accepting_every_missing_key_releases_the_guard() {
    let m = master_of(&ring(&[2]));
    let st = recorded(&[1, 2], "agents");
    let value = id(1).to_string();
    let d = keyring(&Seen { accept_missing: Some(&value), ..seen(Some(&m), Some(&st), &[]) });
    assert_eq!(d, Decision { accept: Accept::Accepted(vec![id(1)]), next: Next::Converge });
}

#[test]
fn accepting_only_some_missing_keys_is_refused_and_the_guard_holds() {
    let m = master_of(&ring(&[3]));
    let st = recorded(&[1, 2, 3], "agents");
    let value = id(1).to_string();
    let d = keyring(&Seen { accept_missing: Some(&value), ..seen(Some(&m), Some(&st), &[]) });
    assert!(matches!(&d.accept, Accept::Refused(why) if why.contains(&id(2).to_string())), "{d:?}");
    assert_eq!(hold_reason(&d), Some("KeysMissing"));
}

#[test]
fn accepting_when_nothing_is_missing_is_refused_and_the_keyring_proceeds() {
    let m = master_of(&ring(&[1]));
    let value = id(1).to_string();
    let d = keyring(&Seen { accept_missing: Some(&value), ..seen(Some(&m), None, &[]) });
    assert!(matches!(&d.accept, Accept::Refused(why) if why.contains("only while keys are missing")));
    assert_eq!(d.next, Next::Converge);
    let d = keyring(&Seen { accept_missing: Some("zz"), ..seen(Some(&m), None, &[]) });
    assert!(matches!(&d.accept, Accept::Refused(why) if why.contains("not a key id")));
}

#[test]
fn restore_from_is_decided_before_accept_and_carries_the_guard() {
    let st = recorded(&[1], "agents");
    let s = Seen { restore_from: Some("team-a"), accept_missing: Some("junk"), ..seen(None, Some(&st), &[]) };
    let d = keyring(&s);
    assert_eq!(d.accept, Accept::Absent, "accept is not looked at");
    assert_eq!(
        d.next,
        Next::Restore { from: "team-a".into(), guard: Some(Guard::MasterMissing { copies: vec![] }) }
    );
    assert_eq!(d.guard_gauge(), None);
    // Without a guard the restore is still decided here; guard::restore refuses it.
    let d = keyring(&Seen { restore_from: Some("team-a"), ..seen(None, None, &[]) });
    assert_eq!(d.next, Next::Restore { from: "team-a".into(), guard: None });
}

fn secret(labels: &[(&str, &str)], annotations: &[(&str, &str)], keyring: Option<&str>) -> Secret {
    let mut s = Secret::default();
    s.metadata.labels = Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
    s.metadata.annotations = Some(annotations.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
    s.data = keyring.map(|t| BTreeMap::from([(DATA_KEY.to_owned(), ByteString(t.as_bytes().to_vec()))]));
    s
}

#[test]
fn the_master_is_this_keyrings_and_parses_or_it_is_held() {
    let k = skr();
    let now = at("2026-06-01T00:00:00Z");
    assert!(master(&k, "print/agents", None, now).unwrap().is_none());
    let foreign = secret(&[(LABEL_KEYRING, "other")], &[], Some(&ring(&[1]).to_text()));
    let held = master(&k, "print/agents", Some(foreign), now).unwrap_err();
    assert_eq!(held, Hold::MasterConflict { place: "print/agents".into() });
    assert_eq!(held.invalid().reason, "SecretConflict");
    // The name and the keyring's label, but not the master's role: a copy,
    // a backup's role, or none (somebody else's Secret, labelled).
    for role in [Some("copy"), Some("backup"), None] {
        let mut labels = vec![(LABEL_KEYRING, "agents")];
        labels.extend(role.map(|r| (LABEL_ROLE, r)));
        let other = secret(&labels, &[(ANN_KEY_IDS, "x")], Some(&ring(&[1]).to_text()));
        let held = master(&k, "print/agents", Some(other), now).unwrap_err();
        assert_eq!(held, Hold::MasterConflict { place: "print/agents".into() }, "{role:?}");
    }
    let broken = secret(&[(LABEL_KEYRING, "agents"), (LABEL_ROLE, "master")], &[], Some("not a keyring"));
    let inv = master(&k, "print/agents", Some(broken), now).unwrap_err().invalid();
    assert_eq!(inv.reason, "MasterInvalid");
    assert!(!inv.message.contains("not a keyring"), "no content quoted: {}", inv.message);
    let r = ring(&[1, 2]);
    let annotated = secret(
        &[(LABEL_KEYRING, "agents"), (LABEL_ROLE, "master")],
        &[(ANN_KEY_IDS, "x")],
        Some(&r.to_text()),
    );
    let m = master(&k, "print/agents", Some(annotated), now).unwrap().unwrap();
    assert_eq!(m.ring.ids(), r.ids());
}

#[test]
fn a_master_put_back_by_hand_takes_its_lifecycle_from_the_status() {
    let mut k = skr();
    let (k1, k2) = (key(1), key(2));
    let r = Keyring::new(vec![k1.clone(), k2.clone()]).unwrap();
    let mut st = recorded(&[1, 2], "agents");
    st.keys[0].retired_at = Some("2026-06-01T00:00:00Z".into());
    st.keys[1].state = KeyState::Primary;
    st.keys[1].promoted_at = Some("2026-06-01T00:00:00Z".into());
    k.status = Some(st);
    k.metadata.annotations = Some(BTreeMap::from([(ANN_ROTATE.to_owned(), "7".to_owned())]));
    let plain = secret(&[(LABEL_KEYRING, "agents"), (LABEL_ROLE, "master")], &[], Some(&r.to_text()));
    let m = master(&k, "print/agents", Some(plain), at("2026-07-01T00:00:00Z")).unwrap().unwrap();
    assert_eq!(m.meta.retired[&k1.id()], at("2026-06-01T00:00:00Z"));
    assert_eq!(m.meta.promoted[&k2.id()], at("2026-06-01T00:00:00Z"));
    assert_eq!(m.meta.rotate_handled.as_deref(), Some("7"), "a restore does not start a rotation");
    assert_eq!(m.meta.staged, None);
    assert!(m.meta.imported.is_empty());
}

#[test]
fn a_master_put_back_by_hand_keeps_its_imported_keys_imported() {
    let mut k = skr();
    let r = ring(&[1, 2]);
    let mut st = recorded(&[1, 2], "agents");
    st.keys[0].imported = true;
    k.status = Some(st);
    let plain = secret(&[(LABEL_KEYRING, "agents"), (LABEL_ROLE, "master")], &[], Some(&r.to_text()));
    let m = master(&k, "print/agents", Some(plain), at("2026-07-01T00:00:00Z")).unwrap().unwrap();
    assert_eq!(m.meta.imported, [id(1)].into_iter().collect());
}

#[test]
fn a_deferred_rotation_is_announced_once() {
    let until = at("2026-11-23T09:05:02Z");
    let interval = Duration::from_secs(300);
    let note = rotation_deferred_note(None, &RotationReason::Requested, until, interval).expect("news");
    assert_eq!((note.reason(), note.type_()), ("RotationDeferred", EventType::Normal));
    assert!(note.note().contains("2026-11-23T09:05:02Z") && note.note().contains("300s"), "{}", note.note());
    let mut st = KeyringStatus::default();
    st.conditions.push(Condition {
        type_: condition::ROTATING.into(),
        status: "False".into(),
        reason: "RotationDeferred".into(),
        message: String::new(),
        last_transition_time: String::new(),
        observed_generation: None,
    });
    assert_eq!(rotation_deferred_note(Some(&st), &RotationReason::Requested, until, interval), None);
}

#[test]
fn imported_keys_kept_are_announced_once() {
    assert_eq!(imported_kept(None, &[]), None);
    let note = imported_kept(None, &[id(1)]).expect("news");
    assert_eq!((note.reason(), note.type_()), ("ImportedKeysKept", EventType::Normal));
    assert!(note.note().contains("retention.pruneImported"), "{}", note.note());
    let mut st = recorded(&[1, 2], "agents");
    st.keys[0].kept = Some(Kept::Imported);
    assert_eq!(imported_kept(Some(&st), &[id(1)]), None, "already said");
    assert!(imported_kept(Some(&st), &[id(1), id(2)]).is_some(), "a second key is news");
}

#[test]
fn a_labelled_secret_on_the_server_blocks_creation() {
    assert_eq!(create("encstr/payments", vec![]), Ok(()));
    let held = create("encstr/payments", vec!["team-a/payments".into()]).unwrap_err();
    assert_eq!(held.guard(), Some(&Guard::MasterMissing { copies: vec!["team-a/payments".into()] }));
}

#[test]
fn no_keyring_is_generated_over_existing_backups() {
    let mut spec = desired::validate(&skr()).unwrap();
    assert!(!look_for_backups(&spec, false, false), "no backups configured");
    spec.backup = Some(Plan { recipients: vec![], config_map: None, keep: 1, object_store: None });
    assert!(look_for_backups(&spec, false, false));
    assert!(!look_for_backups(&spec, true, false), "encstr.io/ignore-existing-backups");
    assert!(!look_for_backups(&spec, false, true), "this process's own backup of the new keyring");
    assert_eq!(generate(&[]), Ok(()));
    let held = generate(&["configmap encstr/payments-backup: 2 backup(s)".into()]).unwrap_err();
    let inv = held.invalid();
    assert_eq!(inv.reason, "BackupsExist");
    assert!(
        inv.message.contains("configmap encstr/payments-backup")
            && inv.message.contains("encstr.io/ignore-existing-backups"),
        "{}",
        inv.message
    );
    assert!(held.rechecks(), "a bucket emptied by hand is noticed");
    assert!(held.guard().is_none());
}

#[test]
fn holds_the_keyrings_watch_cannot_see_fixed_are_looked_at_again() {
    let import = Hold::Import(ImportProblem::NotFound { name: "legacy".into(), namespace: "print".into() });
    let conflict = Hold::MasterConflict { place: "print/agents".into() };
    let namespace = Hold::NamespaceMissing { namespace: "encstr".into(), why: "not found".into() };
    for hold in [import, conflict, namespace] {
        assert!(hold.rechecks(), "{hold:?}");
    }
    assert!(!Hold::Spec(Invalid::new("InvalidDuration", "x")).rechecks(), "an edit of the keyring fixes it");
}

fn import_spec() -> ValidSpec {
    let mut k = skr();
    k.spec.import_from =
        Some(ImportFrom { secret_ref: SecretKeyRef { name: "legacy".into(), key: Some("keys".into()) } });
    desired::validate(&k).unwrap()
}

#[test]
fn import_reads_only_an_unmanaged_secret_with_a_valid_keyring() {
    let plain = desired::validate(&skr()).unwrap();
    assert!(matches!(import(&plain, "print", None), Ok(None)), "nothing to import: generate");
    let spec = import_spec();
    let reason = |r: Result<Option<Keyring>, Hold>| r.unwrap_err().invalid().reason;
    assert_eq!(reason(import(&spec, "print", None)), "ImportNotFound");
    let r = ring(&[1]);
    let managed = secret(&[(LABEL_CLUSTER_KEYRING, "x")], &[], None);
    assert_eq!(reason(import(&spec, "print", Some(&managed))), "ImportOfManagedSecret");
    let no_key = secret(&[], &[], Some(&r.to_text()));
    assert_eq!(reason(import(&spec, "print", Some(&no_key))), "ImportInvalid");
    let with_keys = |text: &[u8]| Secret {
        data: Some(BTreeMap::from([("keys".to_owned(), ByteString(text.to_vec()))])),
        ..Secret::default()
    };
    let bad = with_keys(b"nope");
    assert_eq!(reason(import(&spec, "print", Some(&bad))), "ImportInvalid");
    let good = with_keys(r.to_text().as_bytes());
    assert_eq!(import(&spec, "print", Some(&good)).unwrap().unwrap().ids(), r.ids());
}

fn backed_up(ids: &[KeyId]) -> LastBackup {
    LastBackup { key_ids: ids.iter().map(ToString::to_string).collect(), ..LastBackup::default() }
}

#[test]
fn only_backed_up_keys_are_distributed() {
    let r = ring(&[1, 2, 3]);
    let mut spec = desired::validate(&skr()).unwrap();
    assert_eq!(distributable(&spec, &r, None).unwrap().ids(), r.ids(), "no backups configured");
    spec.backup = Some(Plan { recipients: vec![], config_map: None, keep: 1, object_store: None });
    assert!(distributable(&spec, &r, None).is_none(), "nothing backed up yet");
    let all = backed_up(&[id(1), id(2), id(3)]);
    assert_eq!(distributable(&spec, &r, Some(&all)).unwrap().ids(), r.ids());
    let part = backed_up(&[id(1), id(2)]);
    assert_eq!(distributable(&spec, &r, Some(&part)).unwrap().ids(), vec![id(1), id(2)]);
    assert!(distributable(&spec, &r, Some(&backed_up(&[id(9)]))).is_none());
}

#[test]
fn prune_blocks_are_announced_once() {
    let r = ring(&[1, 2]);
    let mut usage = Usage::default();
    usage.add("team-a", "ConfigMap", "app", "db", b"x");
    usage.counts.insert(id(1), 1);
    usage.places.insert(id(1), vec!["team-a/ConfigMap/app:db".into()]);
    assert_eq!(prune_blocked(None, &[id(1)], &r, None), (vec![], None), "no count, nothing known");
    let (blocked, note) = prune_blocked(None, &[id(1), id(2)], &r, Some(&usage));
    assert_eq!(blocked, vec![id(1)]);
    let Some(Note::PruneBlocked { places, .. }) = note else { panic!("a note") };
    assert_eq!(places, vec!["team-a/ConfigMap/app:db"]);
    let mut st = KeyringStatus::default();
    st.conditions.push(Condition {
        type_: condition::PRUNE_BLOCKED.into(),
        status: "True".into(),
        reason: "PruneBlocked".into(),
        message: "used at team-a/ConfigMap/app:db".into(),
        last_transition_time: String::new(),
        observed_generation: None,
    });
    let (blocked, note) = prune_blocked(Some(&st), &[id(1)], &r, Some(&usage));
    assert_eq!((blocked, note), (vec![id(1)], None), "already said");
}

#[test]
fn every_step_that_changes_keys_is_announced() {
    let (before, after) = (ring(&[1]), ring(&[1, 2]));
    let mut meta = KeyMeta::initial(&after, None, at("2026-01-01T00:00:00Z"));
    meta.staged = Some(id(2));
    let staged = step_note(&Step::Stage(RotationReason::Scheduled), &before, &after, &meta).unwrap();
    assert_eq!(staged.reason(), "KeyStaged");
    assert!(staged.note().contains(&id(2).to_string()));
    let promoted = step_note(&Step::Promote, &ring(&[2, 1]), &after, &meta).unwrap();
    assert_eq!(promoted, Note::KeyPromoted { primary: after.primary().id(), former: id(1) });
    assert_eq!(
        step_note(&Step::Prune(vec![id(1)]), &after, &before, &meta),
        Some(Note::KeysPruned(vec![id(1)]))
    );
    assert_eq!(step_note(&Step::MarkDistributed, &after, &after, &meta), None);
    assert_eq!(step_note(&Step::AcknowledgeRequest, &after, &after, &meta), None);
}

#[test]
fn the_next_look_follows_what_is_pending() {
    let now = at("2026-06-01T00:00:00Z");
    let r = ring(&[1]);
    let mut spec = desired::validate(&skr()).unwrap();
    let meta = KeyMeta::initial(&r, None, now);
    let quiet = Timing {
        resync: Duration::from_secs(300),
        stepped: false,
        promotion_at: None,
        backup_retry: None,
        rescan: None,
        rotation_at: None,
        now,
    };
    assert_eq!(next_look(&spec, &r, &meta, quiet), Duration::from_secs(300), "nothing pending: resync");
    assert_eq!(next_look(&spec, &r, &meta, Timing { stepped: true, ..quiet }), Duration::from_millis(50));
    let soon = now + SignedDuration::from_secs(30);
    assert_eq!(
        next_look(&spec, &r, &meta, Timing { promotion_at: Some(soon), ..quiet }),
        Duration::from_secs(30)
    );
    let mut staged = meta.clone();
    staged.staged = Some(id(1));
    assert_eq!(next_look(&spec, &r, &staged, quiet), Duration::from_secs(2), "waiting for copies");
    spec.every = Some(Duration::from_secs(3600));
    assert_eq!(next_look(&spec, &r, &meta, quiet), Duration::from_secs(300), "rotation due after resync");
    spec.every = Some(Duration::from_secs(60));
    assert_eq!(next_look(&spec, &r, &meta, quiet), Duration::from_secs(60), "rotation due");
    let retry = Timing { backup_retry: Some(Duration::from_secs(4)), ..quiet };
    assert_eq!(next_look(&spec, &r, &meta, retry), Duration::from_secs(4));
    let rescan = Timing { rescan: Some(Duration::from_millis(10)), ..quiet };
    assert_eq!(next_look(&spec, &r, &meta, rescan), Duration::from_millis(200), "at least 200 ms");
    // A scheduled rotation overdue but deferred: looked at when the
    // interval ends, not every 200 ms meanwhile.
    let overdue =
        KeyMeta { promoted: BTreeMap::from([(id(1), now - SignedDuration::from_hours(2))]), ..meta };
    let deferred = Timing { rotation_at: Some(now + SignedDuration::from_secs(90)), ..quiet };
    assert_eq!(next_look(&spec, &r, &overdue, deferred), Duration::from_secs(90));
}

#[test]
fn a_promotion_is_due_only_once_copies_hold_the_staged_key() {
    let spec = desired::validate(&skr()).unwrap();
    let r = ring(&[1, 2]);
    let mut meta = KeyMeta::initial(&r, None, at("2026-06-01T00:00:00Z"));
    assert_eq!(promotion_at(&spec, &meta), None);
    meta.staged = Some(id(1));
    assert_eq!(promotion_at(&spec, &meta), None, "not distributed yet");
    meta.distributed_at = Some(at("2026-06-01T00:00:00Z"));
    assert_eq!(promotion_at(&spec, &meta), Some(at("2026-06-01T00:02:00Z")), "the default 2m delay");
}

#[test]
fn a_copy_keeps_every_master_key_it_holds() {
    let master = ring(&[1, 2, 3]);
    let backed_up = ring(&[1]);
    // Held 1 and 2: keeps 2 though only 1 is backed up; 3 (never handed
    // out) waits for its backup.
    let widened = copy_ring(&master, &backed_up, &ring(&[1, 2])).expect("wider");
    assert_eq!(widened.ids(), vec![id(1), id(2)]);
    // Nothing held beyond what may be distributed: the distributable ring.
    assert!(copy_ring(&master, &backed_up, &ring(&[1])).is_none());
    // A key the master no longer has (pruned) is not kept.
    assert!(copy_ring(&master, &backed_up, &ring(&[1, 9])).is_none());
    // The master's order, primary last.
    let widened = copy_ring(&master, &ring(&[3]), &ring(&[2, 1])).expect("wider");
    assert_eq!(widened.ids(), master.ids());
}

#[test]
fn a_master_is_restored_only_from_a_copy_every_other_copy_agrees_with() {
    let targets = vec![
        Target::Active("team-a".into()),
        Target::Active("team-b".into()),
        Target::Missing("team-c".into()),
    ];
    let (good, bad) = ([1u8; 32], [2u8; 32]);
    let cached = vec![("team-a".to_owned(), Some(good)), ("team-b".to_owned(), Some(good))];
    assert_eq!(restore_source("team-a", &targets, good, &cached), Ok(()));
    let why = restore_source("elsewhere", &targets, good, &cached).unwrap_err();
    assert!(why.contains("not an active target"), "{why}");
    assert!(restore_source("team-c", &targets, good, &cached).is_err(), "a missing target");
    // The copy read differs from what the cache recorded for the copies.
    let why = restore_source("team-a", &targets, bad, &cached).unwrap_err();
    assert!(why.contains("team-a, team-b"), "{why}");
    // Another copy was changed: refused, whichever is the planted one.
    let split = vec![("team-a".to_owned(), Some(good)), ("team-b".to_owned(), Some(bad))];
    assert!(restore_source("team-a", &targets, good, &split).unwrap_err().contains("team-b"));
    // A copy outside the targets does not count.
    let stray = vec![("team-a".to_owned(), Some(good)), ("old".to_owned(), Some(bad))];
    assert_eq!(restore_source("team-a", &targets, good, &stray), Ok(()));
}

#[test]
fn delete_is_retain_while_anything_holds() {
    assert_eq!(deletion(DeletionPolicy::Delete, None), (DeletionPolicy::Delete, None));
    assert_eq!(deletion(DeletionPolicy::Retain, None), (DeletionPolicy::Retain, None));
    let hold = Hold::Guard { guard: Guard::MasterMissing { copies: vec![] }, master: "encstr/p".into() };
    let (policy, note) = deletion(DeletionPolicy::Delete, Some(&hold));
    assert_eq!(policy, DeletionPolicy::Retain);
    let note = note.expect("a Warning");
    assert_eq!((note.type_(), note.reason()), (EventType::Warning, "DeletionRetained"));
    assert!(note.note().contains("MasterMissing"), "{}", note.note());
    assert_eq!(deletion(DeletionPolicy::Retain, Some(&hold)), (DeletionPolicy::Retain, None));
}

#[test]
fn keys_no_backup_holds_keep_delete_from_applying() {
    let r = ring(&[1, 2]);
    let mut spec = desired::validate(&skr()).unwrap();
    assert_eq!(not_backed_up(&spec, &r, None), None, "no backups configured");
    spec.backup = Some(Plan { recipients: vec![], config_map: None, keep: 1, object_store: None });
    assert_eq!(not_backed_up(&spec, &r, None), Some(Hold::NotBackedUp { keys: vec![id(1), id(2)] }));
    let part = backed_up(&[id(1)]);
    let hold = not_backed_up(&spec, &r, Some(&part)).expect("key 2 is in no backup");
    assert_eq!(hold.invalid().reason, "BackupPending");
    assert_eq!(deletion(DeletionPolicy::Delete, Some(&hold)).0, DeletionPolicy::Retain);
    assert_eq!(not_backed_up(&spec, &r, Some(&backed_up(&[id(1), id(2)]))), None);
}

#[test]
fn a_promotion_waits_for_active_targets_without_a_conflict() {
    let targets = vec![
        Target::Active("team-a".into()),
        Target::Active("team-b".into()),
        Target::Missing("team-c".into()),
        Target::Terminating("team-d".into()),
    ];
    assert_eq!(promotion_targets(&targets, None), vec!["team-a", "team-b"]);
    let mut st = KeyringStatus::default();
    st.targets.push(events::TargetState::SecretConflict { secret_name: "p".into() }.status("team-b"));
    st.targets.push(events::TargetState::WriteConflict.status("team-a"));
    assert_eq!(promotion_targets(&targets, Some(&st)), vec!["team-a"], "a write conflict still waits");
}

#[test]
fn an_unreadable_token_blocks_every_candidate() {
    let r = ring(&[1, 2]);
    let mut usage = Usage::default();
    usage.add("team-a", "ConfigMap", "docs", "README", b"tokens look like ENCSTR:<base64>");
    let (blocked, note) = prune_blocked(None, &[id(1)], &r, Some(&usage));
    assert_eq!(blocked, vec![id(1)]);
    let Some(Note::PruneBlocked { places, .. }) = note else { panic!("a note") };
    assert_eq!(places, vec!["team-a/ConfigMap/docs:README"]);
}

fn keys_of(r: &Keyring) -> Holding {
    Holding::Keys(r.ids())
}

#[test]
fn a_secret_keyring_publishes_its_primary_at_once() {
    let r = ring(&[1, 2]);
    assert_eq!(
        recipient(&r, None, &[]),
        Some(key(2).recipient().clone()),
        "the master is what its pods mount"
    );
}

#[test]
fn the_primary_is_published_only_once_every_copy_holds_it() {
    // First distribution: nothing published before any copy is known.
    let r = ring(&[1]);
    assert_eq!(recipient(&r, None, &[Holding::Unknown]), None, "a copy whose write failed");
    assert_eq!(recipient(&r, None, &[keys_of(&r), keys_of(&ring(&[9]))]), None, "a copy lacking it");
    assert_eq!(recipient(&r, None, &[keys_of(&r), keys_of(&r)]), Some(key(1).recipient().clone()));
    // A promotion: 2 becomes primary; the copies held it staged before.
    let before = key(1).recipient().to_string();
    let promoted = ring(&[1, 2]);
    let staged_in_copies = Holding::Keys(vec![id(1), id(2)]);
    assert_eq!(
        recipient(&promoted, Some(&before), &[staged_in_copies.clone(), staged_in_copies.clone()]),
        Some(key(2).recipient().clone())
    );
    // A copy still without the new primary (or unknown): the former stays.
    for lagging in [Holding::Keys(vec![id(1)]), Holding::Unknown] {
        assert_eq!(
            recipient(&promoted, Some(&before), &[staged_in_copies.clone(), lagging]),
            Some(key(1).recipient().clone())
        );
    }
}

#[test]
fn the_former_recipient_stays_only_while_every_copy_and_the_master_hold_its_key() {
    let before = key(1).recipient().to_string();
    let r = ring(&[1, 2]);
    // A copy known to lack both: nothing is published.
    assert_eq!(recipient(&r, Some(&before), &[Holding::Keys(vec![id(3)])]), None);
    // The master no longer holds it (pruned): nothing.
    assert_eq!(recipient(&ring(&[2, 3]), Some(&before), &[Holding::Unknown]), None);
    // The status is no proof: a recipient of another key under a known id,
    // or text that is no recipient, is not kept.
    assert_eq!(recipient(&r, Some("ENCSTR-RECIPIENT:forged"), &[Holding::Unknown]), None);
    let stranger = key(7).recipient().to_string();
    assert_eq!(recipient(&r, Some(&stranger), &[Holding::Unknown]), None);
}

#[test]
fn recipient_configmaps_go_where_the_copy_holds_the_key_and_targets_count_as_promotion_does() {
    let r = ring(&[1, 2]);
    let rec = key(2).recipient().clone();
    assert!(publishes_in(&keys_of(&r), &rec));
    assert!(!publishes_in(&Holding::Keys(vec![id(1)]), &rec));
    assert!(!publishes_in(&Holding::Unknown, &rec));
    assert_eq!(holding(&events::TargetState::Synced, &r), Some(keys_of(&r)));
    for gone in [
        events::TargetState::NamespaceNotFound,
        events::TargetState::NamespaceTerminating,
        events::TargetState::SecretConflict { secret_name: "k".into() },
    ] {
        assert_eq!(holding(&gone, &r), None, "{gone:?} gets no copy: it does not count");
    }
    for unknown in [
        events::TargetState::WriteConflict,
        events::TargetState::BackupPending,
        events::TargetState::WriteFailed { reason: "ApiError", error: "x".into() },
    ] {
        assert_eq!(holding(&unknown, &r), Some(Holding::Unknown), "{unknown:?}");
    }
}

/// Each step writes the master first and the status record after. A crash
/// in between leaves the status behind the master: that trips no guard
/// (the master holds every recorded key, or records that the operator
/// pruned it), and the next reconcile's status records every key of the
/// master again. (The other order could leave a status claiming a key no
/// master holds: a false `KeysMissing`.)
#[test]
fn a_crash_between_the_master_and_the_status_trips_no_guard_and_the_record_catches_up() {
    let t0 = at("2026-01-01T00:00:00Z");
    let mut ring = ring(&[1, 2]);
    let mut meta = KeyMeta::initial(&ring, None, t0);
    let record = |ring: &Keyring, meta: &KeyMeta| {
        let input = crate::status::Input {
            master: Some((ring, meta)),
            secret_name: Some("agents"),
            cluster: false,
            usage: None,
            blocked: &[],
            kept_imported: &[],
            targets: crate::status::Targets::Seen(Vec::new()),
            invalid: None,
            generation: None,
            backup: crate::status::BackupInput::Off,
            promotion_at: None,
            recipient: None,
            local: None,
            rotation_deferred: None,
            now: t0,
        };
        crate::status::compute(None, &input)
    };
    let steps = [
        Step::Stage(RotationReason::Requested),
        Step::MarkDistributed,
        Step::Promote,
        Step::Prune(vec![id(1)]),
    ];
    for step in steps {
        let before = record(&ring, &meta);
        desired::apply_step(&step, &mut ring, &mut meta, Some("1"), t0).unwrap();
        // The master is written; the status is not (yet).
        let m = Master { secret: Secret::default(), ring: ring.clone(), meta: meta.clone() };
        let d = keyring(&seen(Some(&m), Some(&before), &[]));
        assert_eq!(d.next, Next::Converge, "after {step:?}: {d:?}");
        let after = record(&ring, &meta);
        let recorded: Vec<String> = after.keys.iter().map(|k| k.id.clone()).collect();
        assert_eq!(recorded, desired::key_ids(&ring).split(',').map(str::to_owned).collect::<Vec<_>>());
    }
}
