"""Check a project before any work: every hook imports, the model builds, every policy and contract loads.

Loading ``project.yaml`` already refuses unknown keys and wrong types; this
goes one floor up and opens everything the file names, so a bad hook, an
estimator without ``predict_proba`` or a gate naming an unknown metric is one
clear error naming the file, before a pipeline runs or anything is registered.
"""

from __future__ import annotations

from mlops.project import Project, load_hook


def check_project(project: Project) -> list[str]:
    """What was checked, one line each; the first problem raises (a ConfigError naming file and key)."""
    from mlops.contract import load_contract
    from mlops.gate import project_gate
    from mlops.monitoring.policy import project_policy
    from mlops.rollout.policy import load_policy as load_rollout_policy
    from mlops.training import build_model

    done = [f"{project.where}: {project.task.name}, entity {project.entity.name} ({project.entity.key}, "
            f"{project.entity.type}), label {project.label.column} (positive {project.label.positive!r}), "
            f"{len(project.features.columns)} features"]
    for what, hook in (("features.hook", project.features.hook), ("model.build", project.model.build),
                       ("metrics.hook", project.metrics.hook if project.metrics else None), ("data.generator", project.data_hook)):
        if hook is not None:
            load_hook(project, hook)
            done.append(f"{what} {hook} imports")
    model = build_model(project)
    done.append(f"model builds: {type(model).__name__}"
                + (f" ({project.model.estimator})" if project.model.estimator else f" (from {project.model.build})"))
    gate = project_gate(project)
    done.append(f"gate {project.gate.name}: {len(gate.value_thresholds)} value and {len(gate.change_thresholds)} "
                f"change thresholds, fairness on {list(project.sensitive) or 'nothing'}"
                + (", high-stakes" if gate.high_stakes else ""))
    if project.rollout is not None:
        load_rollout_policy(project.rollout)
        done.append(f"rollout policy {project.rollout.name} loads")
    if project.monitoring is not None:
        policy = project_policy(project)
        done.append(f"monitoring policy {project.monitoring.name} loads"
                    + (f" (KPI {policy.performance.kpi})" if policy.performance.kpi else ""))
        if policy.rollout_policy:
            load_rollout_policy(policy.rollout_policy)
    for kind, path in project.contracts.items():
        contract = load_contract(path)
        done.append(f"contract {kind}: {path.name} ({len(contract.columns)} columns)")
    return done
