//! Saved plans: `regops plan --out FILE` records a plan with what it was made from, `regops
//! apply FILE` carries out exactly that plan or nothing, `regops show FILE` renders it.

use std::path::Path;

use regops_core::saved::{self, SavedPlan, SpecRecord};

use super::apply::{session, show_plan, take_lease, unchanged, write_and_report};
use crate::ExitStatus;
use crate::cli::{ApplyArgs, PlanArgs, ShowArgs};
use crate::cluster::{connect_as, runtime};
use crate::failure::{Failure, Outcome};
use crate::load::prepare_checked;
use crate::output::Term;
use crate::prepared::Prepared;
use crate::session::Staged;

/// How many moved objects a refusal lists before "… and N more".
const SHOWN: usize = 20;

/// `plan --out`: reads the cluster, plans, and saves the plan with the spec's digest, the
/// cluster's identity and the version of every object read. The plan is returned to be shown
/// as `plan` shows it.
pub(super) fn plan_and_save(
    args: &PlanArgs,
    prepared: &Prepared,
    out: &Path,
    term: &Term,
) -> Result<regops_core::plan::Plan, Failure> {
    let rt = runtime()?;
    let (client, target) = connect_as(&args.run.cluster.options(), &rt)?;
    let cluster = rt.block_on(crate::saved_plan::cluster_identity(&client, &target))?;
    let loaded = &prepared.loaded;
    let observed = rt.block_on(crate::observe::from_cluster(
        &client,
        &target,
        &loaded.spec,
        &loaded.name,
        prepared.only.as_ref(),
    ))?;
    let (desired, plan) = rt.block_on(prepared.plan(&observed, &target.to_string()));
    drop(desired);
    let objects = saved::versions(&observed);
    drop(observed);
    let (files, from_repository) = crate::saved_plan::files_to_record(&args.run.spec.files);
    let record = SavedPlan {
        kind: saved::KIND.into(),
        format_version: saved::FORMAT_VERSION.into(),
        regops_version: crate::cli::VERSION.into(),
        created: jiff::Timestamp::now().to_string(),
        spec: SpecRecord {
            name: loaded.name.clone(),
            files,
            from_repository,
            digest: crate::saved_plan::files_digest(&loaded.sources),
            ciphertexts: crate::saved_plan::ciphertext_digests(&loaded.spec, &loaded.sources),
            commit: prepared.source.commit.clone(),
            dirty: prepared.source.dirty,
        },
        cluster,
        namespaces: args.run.namespaces.clone(),
        workload_kinds: saved::kind_records(&loaded.spec),
        objects,
        plan,
        warnings: Vec::new(),
        writes: Vec::new(),
    };
    crate::saved_plan::write(out, &record).map_err(|e| Failure::Message {
        message: format!("cannot write the plan to {}: {e}", out.display()),
        help: None,
    })?;
    term.note(&format!(
        "Saved the plan to {}: `regops apply {}` carries out exactly this plan, or nothing if \
         the spec or the cluster has moved.",
        out.display(),
        out.display()
    ));
    Ok(record.plan)
}

/// `regops show FILE`: the plan as `plan` shows it, after what it was made from. Exit 0 once
/// shown (1 if the file cannot be read): only `plan` and `drift` exit 2.
pub(super) fn show(args: ShowArgs, term: &Term) -> Outcome {
    let saved = crate::saved_plan::read(&args.file).map_err(|e| Failure::msg(e.to_string()))?;
    term.view(
        &regops_core::saved::SavedPlanView(&saved),
        args.output,
        &regops_core::format::Style {
            color: term.color_stdout(),
            detail: args.detail.view(),
            max_bytes: args.max_bytes,
        },
    );
    // Showing is done once the plan is shown, whatever it holds: its changes were `plan`'s
    // exit code to report (2), its conflicts too (1), when it was made.
    Ok(ExitStatus::Success)
}

/// A refusal: the plan is not applied, and why, with what to do.
fn refuse(what: String, lines: &[String]) -> Failure {
    // What moved names the cluster's objects and the file's contents: each on its own line,
    // and only there.
    use regops_spec::untrusted::terminal;
    let mut message = format!(
        "the saved plan was not applied; nothing was written: {}",
        terminal(&what)
    );
    for l in lines.iter().take(SHOWN) {
        message.push_str("\n  ");
        message.push_str(&terminal(l));
    }
    if lines.len() > SHOWN {
        message.push_str(&format!("\n  … and {} more", lines.len() - SHOWN));
    }
    Failure::Message {
        message,
        help: Some(
            "plan again (`regops plan -f SPEC --out FILE`), review that plan, and apply it".into(),
        ),
    }
}

/// The objects that moved since the plan, as a refusal.
fn check_unmoved(
    saved: &SavedPlan,
    observed: &regops_core::observed::Observed,
) -> Result<(), Failure> {
    let now = saved::versions(observed);
    let moved = saved::moved(&saved.objects, &now);
    if moved.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = moved.iter().map(ToString::to_string).collect();
    Err(refuse(
        format!(
            "{} object{} read for the plan changed since it was made",
            moved.len(),
            if moved.len() == 1 { "" } else { "s" }
        ),
        &lines,
    ))
}

/// `regops apply FILE`: exactly the saved plan, or nothing. Checked in this order, each before
/// anything is written: the regops version; the spec's files (before they are parsed); the
/// ciphertext files; the cluster; every object read, and the plan made again from all of
/// these, which must be the saved one (once before the Lease is taken, again under it). Then
/// the saved plan's writes are carried out as a fresh plan's are.
pub(super) fn apply_saved(mut args: ApplyArgs, term: &Term) -> Outcome {
    let Some(path) = args.plan_file.clone() else {
        return Err(Failure::msg("no saved plan given"));
    };
    let saved = crate::saved_plan::read(&path).map_err(|e| Failure::msg(e.to_string()))?;
    if saved.regops_version != crate::cli::VERSION {
        return Err(refuse(
            format!(
                "it was made by regops {}, and this is regops {}",
                saved.regops_version,
                crate::cli::VERSION
            ),
            &[],
        ));
    }
    if args.run.spec.files.is_empty() {
        args.run.spec.files =
            crate::saved_plan::recorded_files(&saved).map_err(|e| Failure::Message {
                message: e,
                help: Some("name the spec with -f".into()),
            })?;
    }
    args.run.namespaces = saved.namespaces.clone();
    let check = |sources: &regops_spec::Sources| {
        let now = crate::saved_plan::files_digest(sources);
        if now == saved.spec.digest {
            Ok(())
        } else {
            // The files' new digest is not said: for files a crafted plan names, it would
            // tell whether a guess of their content is right.
            Err(refuse(
                "the spec's files differ from those planned".into(),
                &[format!("planned from {}", saved.spec.digest)],
            ))
        }
    };
    let run = args.run.options();
    let prepared = prepare_checked(&run, term, &check)?;
    if crate::fleet::fleet_members(&run, &prepared)?.is_some() {
        return Err(Failure::msg(
            "a spec with `clusters` has no saved plans: plan and apply each cluster's spec",
        ));
    }
    let ciphertexts =
        crate::saved_plan::ciphertext_digests(&prepared.loaded.spec, &prepared.loaded.sources);
    if ciphertexts != saved.spec.ciphertexts {
        let names: Vec<String> = ciphertexts
            .keys()
            .chain(saved.spec.ciphertexts.keys())
            .filter(|k| ciphertexts.get(*k) != saved.spec.ciphertexts.get(*k))
            .map(|k| format!("credential `{k}`"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(refuse(
            "the ciphertext files of the spec differ from those planned".into(),
            &names,
        ));
    }
    let rt = runtime()?;
    let (client, target) = connect_as(&run.cluster, &rt)?;
    let cluster = rt.block_on(crate::saved_plan::cluster_identity(&client, &target))?;
    if cluster.kube_system_uid != saved.cluster.kube_system_uid {
        return Err(refuse(
            "this is another cluster".into(),
            &[
                format!(
                    "planned against {} (kube-system uid {})",
                    saved.cluster.target, saved.cluster.kube_system_uid
                ),
                format!(
                    "connected to {} (kube-system uid {})",
                    cluster.target, cluster.kube_system_uid
                ),
            ],
        ));
    }
    if cluster.server != saved.cluster.server {
        term.note(&format!(
            "note: the cluster is the one planned (same kube-system uid), reached at {} instead of {}",
            regops_spec::untrusted::terminal(&cluster.server),
            regops_spec::untrusted::terminal(&saved.cluster.server)
        ));
    }
    let loaded = &prepared.loaded;
    let session = session(&args, &loaded.name)?;
    // Staged as a fresh plan is: read and check without the Lease (a stale plan is refused
    // with nothing written, not even the Lease; a plan with nothing to write needs no more),
    // then under it. Each read checks every object the plan was made from, and plans again
    // from them: the plan made again must be the saved one, writes included.
    let read = async || {
        let observed = crate::observe::from_cluster(
            &client,
            &target,
            &loaded.spec,
            &loaded.name,
            prepared.only.as_ref(),
        )
        .await?;
        check_unmoved(&saved, &observed)?;
        let (desired, plan) = prepared.plan(&observed, &target.to_string()).await;
        let differs = saved::differences(&saved.plan, &plan);
        if !differs.is_empty() {
            return Err(refuse(
                "planned again from the same spec and objects, it differs (a password from \
                 the environment or a file, or a minted token, may have changed)"
                    .into(),
                &differs,
            ));
        }
        Ok::<_, Failure>((observed, desired, plan))
    };
    let connect = crate::cluster::lock_connect(
        args.run.cluster.kubeconfig.clone(),
        args.run.cluster.context.clone(),
    );
    let take = async || take_lease(&session, &args, &client, connect, None, term).await;
    let Staged {
        observed,
        desired,
        plan,
        lock,
    } = rt.block_on(session.stage(read, take))?;
    // What is carried out is the saved plan, its writes as saved (the plan made again only
    // proved it current); `desired` gives the Secrets' data.
    drop(plan);
    let result = (|| {
        if !saved.plan.has_changes() {
            return Ok(unchanged(&saved.plan, &args, term));
        }
        show_plan(&saved.plan, &args, term);
        // A saved plan was reviewed when it was made (and is refused if anything it was made
        // from moved): it is applied without asking, as terraform applies one.
        write_and_report(
            &args,
            &rt,
            (&session, &client),
            (&saved.plan, &desired, &observed),
            lock.as_ref(),
            term,
        )
    })();
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
}
