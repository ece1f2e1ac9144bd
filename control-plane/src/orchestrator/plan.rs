//! Planning a template's deploy: which services, in which order, on which
//! branches. A pure function of the template and the request, checked
//! before anything is recorded.

use std::collections::BTreeMap;

use crate::store::{RepoBranch, Template};

/// A template deploy that names what the template does not have.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    InvalidName(#[from] sdp_bus::validate::InvalidName),
    #[error("{repo} is not a service of template {template}")]
    NotInTemplate { repo: String, template: String },
}

/// What deploying `template` starts, in order: its services (only those in
/// `only`, if given), then the gateway, so it starts with what exists; each
/// on its branch in `branches`, else the template's.
pub fn plan_template(
    template: &Template,
    branches: &BTreeMap<String, String>,
    only: Option<&[String]>,
) -> Result<Vec<RepoBranch>, PlanError> {
    let not_in_template = |repo: &str| PlanError::NotInTemplate {
        repo: repo.to_owned(),
        template: template.name.clone(),
    };
    for (repo, branch) in branches {
        sdp_bus::validate::repo(repo)?;
        sdp_bus::validate::branch(branch)?;
        let known = template
            .services
            .iter()
            .chain(template.gateway.iter())
            .any(|s| s.repo == *repo);
        if !known {
            return Err(not_in_template(repo));
        }
    }
    if let Some(only) = only
        && let Some(unknown) = only
            .iter()
            .find(|r| !template.services.iter().any(|s| s.repo == **r))
    {
        return Err(not_in_template(unknown));
    }
    let services = template
        .services
        .iter()
        .filter(|s| only.is_none_or(|only| only.contains(&s.repo)));
    Ok(services
        .chain(template.gateway.iter())
        .map(|planned| RepoBranch {
            branch: branches
                .get(&planned.repo)
                .unwrap_or(&planned.branch)
                .clone(),
            ..planned.clone()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sdp_bus::ServiceOverrides;

    use super::*;

    fn service(repo: &str, branch: &str) -> RepoBranch {
        RepoBranch {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            overrides: ServiceOverrides::default(),
        }
    }

    fn template(services: &[(&str, &str)], gateway: Option<(&str, &str)>) -> Template {
        Template {
            name: "shop".to_owned(),
            environment: None,
            gateway: gateway.map(|(r, b)| service(r, b)),
            services: services.iter().map(|(r, b)| service(r, b)).collect(),
            tests: None,
            resources: Vec::new(),
            created_by: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn repos_and_branches(plan: &[RepoBranch]) -> Vec<(&str, &str)> {
        plan.iter()
            .map(|p| (p.repo.as_str(), p.branch.as_str()))
            .collect()
    }

    #[test]
    fn services_then_the_gateway_each_on_its_branch() {
        let shop = template(
            &[("users", "main"), ("orders", "dev")],
            Some(("edge", "main")),
        );
        let branches = BTreeMap::from([
            ("orders".to_owned(), "fix-1".to_owned()),
            ("edge".to_owned(), "next".to_owned()),
        ]);
        let plan = plan_template(&shop, &branches, None).expect("plans");
        assert_eq!(
            repos_and_branches(&plan),
            [("users", "main"), ("orders", "fix-1"), ("edge", "next")]
        );
        let only = ["orders".to_owned()];
        let plan = plan_template(&shop, &BTreeMap::new(), Some(&only)).expect("plans");
        assert_eq!(
            repos_and_branches(&plan),
            [("orders", "dev"), ("edge", "main")]
        );
    }

    #[test]
    fn what_the_template_lacks_is_named() {
        let shop = template(&[("users", "main")], Some(("edge", "main")));
        let branches = BTreeMap::from([("billing".to_owned(), "main".to_owned())]);
        let err = plan_template(&shop, &branches, None).expect_err("not in it");
        assert_eq!(err.to_string(), "billing is not a service of template shop");
        // The gateway always goes: it is not a service to pick.
        let only = ["edge".to_owned()];
        let err = plan_template(&shop, &BTreeMap::new(), Some(&only)).expect_err("gateway");
        assert!(matches!(err, PlanError::NotInTemplate { repo, .. } if repo == "edge"));
        let branches = BTreeMap::from([("users".to_owned(), "-x".to_owned())]);
        let err = plan_template(&shop, &branches, None).expect_err("bad branch");
        assert!(matches!(err, PlanError::InvalidName(_)), "{err}");
    }

    const REPOS: [&str; 6] = ["users", "orders", "billing", "edge", "mail", "search"];

    /// A template of distinct repos from [`REPOS`] (services, then maybe a
    /// gateway), branches asked for some of them (or a stranger), and
    /// maybe an `only`.
    fn request() -> impl Strategy<Value = (Template, BTreeMap<String, String>, Option<Vec<String>>)>
    {
        (
            Just(REPOS.to_vec()).prop_shuffle(),
            0usize..=REPOS.len(),
            any::<bool>(),
            proptest::collection::btree_map(
                proptest::sample::select(REPOS.to_vec()),
                "[a-z][a-z0-9-]{0,8}(/[a-z0-9][a-z0-9-]{0,5})?",
                0..4,
            ),
            proptest::option::of(proptest::sample::subsequence(REPOS.to_vec(), 0..4)),
        )
            .prop_map(|(repos, n, has_gateway, branches, only)| {
                let (gateway, services) = match repos[..n].split_last() {
                    Some((last, rest)) if has_gateway => (Some((*last, "main")), rest),
                    _ => (None, &repos[..n]),
                };
                let services: Vec<(&str, &str)> = services.iter().map(|r| (*r, "main")).collect();
                let branches = branches
                    .into_iter()
                    .map(|(r, b)| (r.to_owned(), b))
                    .collect();
                let only = only.map(|o| o.into_iter().map(str::to_owned).collect());
                (template(&services, gateway), branches, only)
            })
    }

    proptest! {
        /// A plan is the template's services (those in `only`) in the
        /// template's order, then its gateway, each on the branch asked
        /// for, else the template's; a repo the template lacks is refused.
        #[test]
        fn a_plan_is_the_picked_services_then_the_gateway((shop, branches, only) in request()) {
            let in_template = |repo: &String| {
                shop.services.iter().chain(shop.gateway.iter()).any(|s| &s.repo == repo)
            };
            let is_service = |repo: &String| shop.services.iter().any(|s| &s.repo == repo);
            let fits = branches.keys().all(in_template)
                && only.iter().flatten().all(is_service);
            match plan_template(&shop, &branches, only.as_deref()) {
                Ok(plan) => {
                    prop_assert!(fits);
                    let expected: Vec<&RepoBranch> = shop
                        .services
                        .iter()
                        .filter(|s| only.as_ref().is_none_or(|o| o.contains(&s.repo)))
                        .chain(shop.gateway.iter())
                        .collect();
                    prop_assert_eq!(plan.len(), expected.len());
                    for (planned, wanted) in plan.iter().zip(expected) {
                        prop_assert_eq!(&planned.repo, &wanted.repo);
                        let branch = branches.get(&wanted.repo).unwrap_or(&wanted.branch);
                        prop_assert_eq!(&planned.branch, branch);
                        prop_assert_eq!(&planned.overrides, &wanted.overrides);
                    }
                }
                Err(PlanError::NotInTemplate { repo, template }) => {
                    prop_assert!(!fits);
                    prop_assert_eq!(template, "shop");
                    prop_assert!(!in_template(&repo) || !is_service(&repo));
                }
                Err(PlanError::InvalidName(err)) => {
                    prop_assert!(false, "the strategy makes valid names: {}", err);
                }
            }
        }
    }
}
