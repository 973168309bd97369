//! Calls, consortia and proposals (the intake service).

use super::{caller, caller_with, upstream};
use crate::clients::{Services, UpstreamError};
use crate::loaders::Loaders;
use crate::schema::money::Krw;
use crate::schema::scoring::EvaluationCase;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, FixedOffset, Utc};
use kaip_contracts::dto::intake as dto;
use kaip_contracts::{CallId, ConsortiumId, ProposalId, Role};
use uuid::Uuid;

/// Korea Standard Time (UTC+9, no daylight saving). Times are stored in UTC and shown in
/// KST to people.
pub fn kst(t: DateTime<Utc>) -> String {
    let offset =
        FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!("+09:00 is a valid offset"));
    t.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M KST")
        .to_string()
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kaip_contracts::dto::intake::OrgType")]
pub enum OrgType {
    LargeEnterprise,
    MidSize,
    Sme,
    Startup,
    University,
    ResearchInstitute,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kaip_contracts::dto::intake::MemberRole")]
pub enum MemberRole {
    Lead,
    Partner,
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "MemberInput")]
pub struct Member {
    pub name: String,
    pub org_type: OrgType,
    /// Korean business registration number, `123-45-67891` (checksum verified).
    pub business_registration_number: String,
    pub role: MemberRole,
}

impl From<dto::Member> for Member {
    fn from(m: dto::Member) -> Self {
        Member {
            name: m.name,
            org_type: m.org_type.into(),
            business_registration_number: m.business_registration_number,
            role: m.role.into(),
        }
    }
}

impl From<Member> for dto::Member {
    fn from(m: Member) -> Self {
        dto::Member {
            name: m.name,
            org_type: m.org_type.into(),
            business_registration_number: m.business_registration_number,
            role: m.role.into(),
        }
    }
}

/// A count the service bounds far below 2^31 (GPUs per model, positions, document bytes),
/// as a GraphQL `Int`, which is 32-bit: out-of-range input is refused while the operation
/// is validated, and a stored value beyond the bound (impossible under intake's rules) is
/// clamped rather than wrapped.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kaip_contracts::dto::intake::TrackKind")]
pub enum TrackKind {
    General,
    IndustrySpecialised,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "kaip_contracts::dto::intake::Artefact")]
pub enum Artefact {
    Weights,
    Data,
    Code,
}

/// The portfolio track: general, or industry-specialised with its industry (a key such as
/// `bio` or `materials`, which a slot constraint can name as `industry:<key>`).
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TrackInput")]
pub struct Track {
    pub kind: TrackKind,
    pub industry: Option<String>,
}

/// What will be released openly, and under which licence (required when anything is).
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "OpennessInput")]
pub struct Openness {
    pub releases: Vec<Artefact>,
    pub licence: Option<String>,
}

/// Whether the model is trained from scratch, and the external models or weights it
/// builds on otherwise.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "IndependenceInput")]
pub struct Independence {
    pub from_scratch: bool,
    #[graphql(default)]
    pub builds_on: Vec<String>,
}

/// A proposal's portfolio declaration: required to submit, kept with each version.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "PortfolioInput")]
pub struct Portfolio {
    pub track: Track,
    pub openness: Openness,
    pub independence: Independence,
}

impl From<dto::Portfolio> for Portfolio {
    fn from(p: dto::Portfolio) -> Self {
        Portfolio {
            track: Track {
                kind: p.track.kind.into(),
                industry: p.track.industry,
            },
            openness: Openness {
                releases: p.openness.releases.into_iter().map(Into::into).collect(),
                licence: p.openness.licence,
            },
            independence: Independence {
                from_scratch: p.independence.from_scratch,
                builds_on: p.independence.builds_on,
            },
        }
    }
}

impl From<Portfolio> for dto::Portfolio {
    fn from(p: Portfolio) -> Self {
        dto::Portfolio {
            track: dto::Track {
                kind: p.track.kind.into(),
                industry: p.track.industry,
            },
            openness: dto::Openness {
                releases: p.openness.releases.into_iter().map(Into::into).collect(),
                licence: p.openness.licence,
            },
            independence: dto::Independence {
                from_scratch: p.independence.from_scratch,
                builds_on: p.independence.builds_on,
            },
        }
    }
}

fn int32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "GpuRequestInput")]
pub struct GpuRequest {
    pub model: String,
    /// 1 to 100000.
    pub count: i32,
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "TalentPositionInput")]
pub struct TalentPosition {
    pub title: String,
    pub field: String,
    pub seniority: String,
    /// 1 to 10000.
    pub count: i32,
}

/// Resources a proposal requests. Money is whole KRW.
#[derive(SimpleObject, InputObject, Clone, Debug, Default)]
#[graphql(input_name = "ResourceRequestInput")]
pub struct ResourceRequest {
    #[graphql(default)]
    pub gpus: Vec<GpuRequest>,
    #[graphql(default)]
    pub data_budget_krw: Krw,
    #[graphql(default)]
    pub talent_funding_krw: Krw,
    #[graphql(default)]
    pub talent_positions: Vec<TalentPosition>,
}

impl From<dto::ResourceRequest> for ResourceRequest {
    fn from(r: dto::ResourceRequest) -> Self {
        ResourceRequest {
            gpus: r
                .gpus
                .into_iter()
                .map(|g| GpuRequest {
                    model: g.model,
                    count: int32(g.count),
                })
                .collect(),
            data_budget_krw: r.data_budget_krw.into(),
            talent_funding_krw: r.talent_funding_krw.into(),
            talent_positions: r
                .talent_positions
                .into_iter()
                .map(|p| TalentPosition {
                    title: p.title,
                    field: p.field,
                    seniority: p.seniority,
                    count: int32(p.count),
                })
                .collect(),
        }
    }
}

impl From<ResourceRequest> for dto::ResourceRequest {
    fn from(r: ResourceRequest) -> Self {
        dto::ResourceRequest {
            gpus: r
                .gpus
                .into_iter()
                .map(|g| dto::GpuRequest {
                    model: g.model,
                    count: g.count.into(),
                })
                .collect(),
            data_budget_krw: r.data_budget_krw.into(),
            talent_funding_krw: r.talent_funding_krw.into(),
            talent_positions: r
                .talent_positions
                .into_iter()
                .map(|p| dto::TalentPosition {
                    title: p.title,
                    field: p.field,
                    seniority: p.seniority,
                    count: p.count.into(),
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "EligibilityInput")]
pub struct Eligibility {
    #[graphql(default = 1)]
    pub min_university_members: u32,
    #[graphql(default)]
    pub allowed_lead_types: Vec<OrgType>,
    #[graphql(default_with = "Krw::won(15_000_000_000)")]
    pub max_data_budget_krw: Krw,
    #[graphql(default_with = "Krw::won(2_000_000_000)")]
    pub max_talent_funding_krw: Krw,
}

impl From<dto::EligibilityRules> for Eligibility {
    fn from(e: dto::EligibilityRules) -> Self {
        Eligibility {
            min_university_members: e.min_university_members,
            allowed_lead_types: e.allowed_lead_types.into_iter().map(Into::into).collect(),
            max_data_budget_krw: e.max_data_budget_krw.into(),
            max_talent_funding_krw: e.max_talent_funding_krw.into(),
        }
    }
}

impl From<Eligibility> for dto::EligibilityRules {
    fn from(e: Eligibility) -> Self {
        dto::EligibilityRules {
            min_university_members: e.min_university_members,
            allowed_lead_types: e.allowed_lead_types.into_iter().map(Into::into).collect(),
            max_data_budget_krw: e.max_data_budget_krw.into(),
            max_talent_funding_krw: e.max_talent_funding_krw.into(),
        }
    }
}

/// A programme the ministry runs in a fiscal year; calls belong to it.
#[derive(SimpleObject, Clone, Debug)]
pub struct Programme {
    pub id: Uuid,
    pub name: String,
    pub fiscal_year: i32,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<dto::Programme> for Programme {
    fn from(p: dto::Programme) -> Self {
        Programme {
            id: p.id,
            name: p.name,
            fiscal_year: p.fiscal_year,
            description: p.description,
            created_at: p.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct ProgrammePage {
    pub items: Vec<Programme>,
    pub next_cursor: Option<ID>,
}

/// A call for proposals.
#[derive(Clone, Debug)]
pub struct Call(pub dto::Call);

#[Object]
impl Call {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn programme_id(&self) -> Option<Uuid> {
        self.0.programme_id
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// When submissions open (UTC).
    async fn opens_at(&self) -> DateTime<Utc> {
        self.0.opens_at
    }
    /// The submission deadline (UTC).
    async fn closes_at(&self) -> DateTime<Utc> {
        self.0.closes_at
    }
    /// The deadline in Korea time, for display.
    async fn closes_at_kst(&self) -> String {
        kst(self.0.closes_at)
    }
    async fn eligibility(&self) -> Eligibility {
        self.0.eligibility.clone().into()
    }
    async fn required_documents(&self) -> &[String] {
        &self.0.required_documents
    }
    /// When the selection was published (proposals are frozen from then on).
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Set for a replacement call: the gate whose freed places it fills.
    async fn replaces(&self) -> Option<super::replacement::CallReplacement> {
        self.0.replaces.clone().map(Into::into)
    }

    /// When an officer cancelled this replacement call (`cancelReplacementCall`).
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Consortium {
    pub id: Uuid,
    pub name: String,
    pub members: Vec<Member>,
    pub updated_at: DateTime<Utc>,
    /// The profile's version: each registration is a new one (see `consortiumVersions`).
    pub version: i32,
}

impl From<dto::Consortium> for Consortium {
    fn from(c: dto::Consortium) -> Self {
        Consortium {
            id: c.id.0,
            name: c.name,
            members: c.members.into_iter().map(Into::into).collect(),
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

/// One version of a consortium's profile: who registered it and when.
#[derive(SimpleObject, Clone, Debug)]
pub struct ConsortiumVersion {
    pub version: i32,
    pub name: String,
    pub members: Vec<Member>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A consortium's withdrawal of its proposal.
#[derive(SimpleObject, Clone, Debug)]
pub struct Withdrawal {
    pub reason: String,
    pub withdrawn_at: DateTime<Utc>,
    /// Who withdrew it (null for withdrawals recorded before this was kept).
    pub withdrawn_by: Option<String>,
}

/// Why the evaluation refused a withdrawal: the decision was published first and stands.
#[derive(SimpleObject, Clone, Debug)]
pub struct WithdrawalRefusal {
    pub reason: String,
    pub refused_at: DateTime<Utc>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Document {
    pub kind: String,
    pub filename: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
    /// At most 5 MiB.
    pub size_bytes: i32,
    pub uploaded_at: DateTime<Utc>,
}

/// One saved version of a proposal.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProposalVersion {
    pub version: i32,
    pub title: String,
    pub summary: String,
    pub resources: ResourceRequest,
    pub portfolio: Option<Portfolio>,
    pub created_at: DateTime<Utc>,
}

/// Proof of submission.
#[derive(SimpleObject, Clone, Debug)]
pub struct Receipt {
    pub proposal_id: Uuid,
    pub version: i32,
    /// SHA-256 over the submitted version and its documents' hashes.
    pub content_hash: String,
    pub submitted_at: DateTime<Utc>,
    pub submitted_at_kst: String,
}

impl From<dto::Receipt> for Receipt {
    fn from(r: dto::Receipt) -> Self {
        Receipt {
            proposal_id: r.proposal_id.0,
            version: r.version,
            content_hash: r.content_hash,
            submitted_at: r.submitted_at,
            submitted_at_kst: kst(r.submitted_at),
        }
    }
}

/// A consortium's proposal.
#[derive(Clone, Debug)]
pub struct Proposal(pub dto::Proposal);

#[Object]
impl Proposal {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn call_id(&self) -> Uuid {
        self.0.call_id.0
    }
    async fn consortium_id(&self) -> Uuid {
        self.0.consortium_id.0
    }
    /// `draft`, `submitted` or `withdrawn`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    async fn resources(&self) -> ResourceRequest {
        self.0.resources.clone().into()
    }
    /// Track, openness and independence (required to submit).
    async fn portfolio(&self) -> Option<Portfolio> {
        self.0.portfolio.clone().map(Into::into)
    }
    async fn documents(&self) -> Vec<Document> {
        self.0
            .documents
            .iter()
            .map(|d| Document {
                kind: d.kind.clone(),
                filename: d.filename.clone(),
                sha256: d.sha256.clone(),
                size_bytes: int32(d.size_bytes),
                uploaded_at: d.uploaded_at,
            })
            .collect()
    }
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.0.submitted_at
    }
    async fn content_hash(&self) -> Option<&str> {
        self.0.content_hash.as_deref()
    }
    /// The consortium's withdrawal, if it withdrew (kept when the evaluation refused it).
    async fn withdrawal(&self) -> Option<Withdrawal> {
        self.0.withdrawal.clone().map(|w| Withdrawal {
            reason: w.reason,
            withdrawn_at: w.withdrawn_at,
            withdrawn_by: w.withdrawn_by,
        })
    }
    /// Why the evaluation refused the withdrawal, if it did: the decision was published
    /// before the withdrawal reached it, so the proposal is `submitted` with its result.
    async fn withdrawal_refusal(&self) -> Option<WithdrawalRefusal> {
        self.0
            .withdrawal_refusal
            .clone()
            .map(|r| WithdrawalRefusal {
                reason: r.reason,
                refused_at: r.refused_at,
            })
    }
    /// Every saved version, oldest first.
    async fn versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProposalVersion>> {
        caller(ctx)?;
        let rows = ctx
            .data::<Loaders>()?
            .versions
            .load_one(self.0.id)
            .await
            .map_err(upstream)?
            .ok_or_else(|| {
                upstream(UpstreamError {
                    code: "PROPOSAL_NOT_FOUND".into(),
                    message: format!("proposal {} does not exist", self.0.id),
                })
            })?;
        Ok(rows
            .into_iter()
            .map(|v| ProposalVersion {
                version: v.version,
                title: v.title,
                summary: v.summary,
                resources: v.resources.into(),
                portfolio: v.portfolio.map(Into::into),
                created_at: v.created_at,
            })
            .collect())
    }
    /// The scoring service's case for this proposal, once scoring has opened it (null until then).
    async fn evaluation_case(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<EvaluationCase>> {
        caller(ctx)?;
        // Absent from the batch answer: no case yet, or not the caller's to see.
        ctx.data::<Loaders>()?
            .cases
            .load_one(self.0.id)
            .await
            .map(|case| case.map(EvaluationCase))
            .map_err(upstream)
    }
}

#[derive(SimpleObject)]
pub struct CallPage {
    pub items: Vec<Call>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ProposalPage {
    pub items: Vec<Proposal>,
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ConsortiumPage {
    pub items: Vec<Consortium>,
    pub next_cursor: Option<ID>,
}

#[derive(InputObject)]
pub struct OpenCallInput {
    /// The programme the call belongs to.
    pub programme_id: Option<Uuid>,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// Default: at least one university member, any lead type, KRW 15bn data and 2bn talent caps.
    pub eligibility: Option<Eligibility>,
    /// Document kinds every submission must carry, e.g. ["proposal", "budget"].
    #[graphql(default)]
    pub required_documents: Vec<String>,
    /// Makes the call a replacement call for places a decided gate freed.
    pub replaces: Option<super::replacement::ReplacementInput>,
}

#[derive(InputObject)]
pub struct RegisterConsortiumInput {
    pub name: String,
    pub members: Vec<Member>,
}

#[derive(InputObject)]
pub struct ProposalInput {
    pub call_id: Uuid,
    pub title: String,
    pub summary: String,
    #[graphql(default)]
    pub resources: ResourceRequest,
    /// Track, openness and independence: may come later, but submission requires it.
    pub portfolio: Option<Portfolio>,
}

#[derive(InputObject)]
pub struct ProposalUpdateInput {
    pub title: String,
    pub summary: String,
    #[graphql(default)]
    pub resources: ResourceRequest,
    /// Absent: the new version keeps the previous version's declaration.
    pub portfolio: Option<Portfolio>,
}

#[derive(Default)]
pub struct IntakeQuery;

#[Object]
impl IntakeQuery {
    /// Programmes, oldest first.
    async fn programmes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<ProgrammePage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .programmes(&authed.token, first, after.as_ref().map(|a| a.as_str()))
            .await
            .map_err(upstream)?;
        Ok(ProgrammePage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// Calls for proposals, oldest first, optionally of one programme. `first` is 1..100 (default 20).
    async fn calls(
        &self,
        ctx: &Context<'_>,
        programme_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<CallPage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .calls(
                &authed.token,
                programme_id,
                first,
                after.as_ref().map(|a| a.as_str()),
            )
            .await
            .map_err(upstream)?;
        Ok(CallPage {
            items: page.items.into_iter().map(Call).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    async fn call(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Call> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .call(&authed.token, CallId(id))
            .await
            .map(Call)
            .map_err(upstream)
    }

    /// A consortium's profile: ministry staff see any; a consortium user its own.
    async fn consortium(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Consortium> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .consortium(&authed.token, ConsortiumId(id))
            .await
            .map(Into::into)
            .map_err(upstream)
    }

    /// Every version of a consortium's profile, oldest first (ministry staff; a consortium
    /// user its own).
    async fn consortium_versions(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Vec<ConsortiumVersion>> {
        let authed = caller_with(
            ctx,
            &[Role::Admin, Role::Officer, Role::Consortium],
            "read a consortium's profile history",
        )?;
        let rows: Vec<dto::ConsortiumVersion> = ctx
            .data::<Services>()?
            .intake
            .get(&format!("/consortia/{id}/versions"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(rows
            .into_iter()
            .map(|v| ConsortiumVersion {
                version: v.version,
                name: v.name,
                members: v.members.into_iter().map(Into::into).collect(),
                recorded_by: v.recorded_by,
                recorded_at: v.recorded_at,
            })
            .collect())
    }

    /// All registered consortia (ministry staff and integrations).
    async fn consortia(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<ConsortiumPage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .consortia(&authed.token, first, after.as_ref().map(|a| a.as_str()))
            .await
            .map_err(upstream)?;
        Ok(ConsortiumPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// Proposals: submitted ones for ministry staff, a consortium's own (drafts included) for its users.
    async fn proposals(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<ProposalPage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .proposals(
                &authed.token,
                call_id.map(CallId),
                first,
                after.as_ref().map(|a| a.as_str()),
            )
            .await
            .map_err(upstream)?;
        Ok(ProposalPage {
            items: page.items.into_iter().map(Proposal).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    async fn proposal(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Proposal> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .proposal(&authed.token, ProposalId(id))
            .await
            .map(Proposal)
            .map_err(upstream)
    }
}

#[derive(Default)]
pub struct IntakeMutation;

#[Object]
impl IntakeMutation {
    /// Creates a programme (officers and admins).
    async fn create_programme(
        &self,
        ctx: &Context<'_>,
        name: String,
        fiscal_year: i32,
        #[graphql(default)] description: String,
    ) -> async_graphql::Result<Programme> {
        let authed = caller_with(ctx, &[Role::Admin, Role::Officer], "create a programme")?;
        let body = dto::CreateProgramme {
            name,
            fiscal_year,
            description,
        };
        ctx.data::<Services>()?
            .create_programme(&authed.token, &body)
            .await
            .map(Into::into)
            .map_err(upstream)
    }

    /// Opens a call for proposals (officers and admins).
    async fn open_call(
        &self,
        ctx: &Context<'_>,
        input: OpenCallInput,
    ) -> async_graphql::Result<Call> {
        let authed = caller_with(ctx, &[Role::Admin, Role::Officer], "open a call")?;
        let body = dto::OpenCall {
            programme_id: input.programme_id,
            title: input.title,
            opens_at: input.opens_at,
            closes_at: input.closes_at,
            eligibility: input.eligibility.map(Into::into).unwrap_or_default(),
            required_documents: input.required_documents,
            replaces: input.replaces.map(Into::into),
        };
        ctx.data::<Services>()?
            .open_call(&authed.token, &body)
            .await
            .map(Call)
            .map_err(upstream)
    }

    /// Registers or updates a consortium's profile (its own, for a consortium user).
    async fn register_consortium(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: RegisterConsortiumInput,
    ) -> async_graphql::Result<Consortium> {
        let authed = caller(ctx)?;
        let body = dto::RegisterConsortium {
            name: input.name,
            members: input.members.into_iter().map(Into::into).collect(),
        };
        ctx.data::<Services>()?
            .register_consortium(&authed.token, ConsortiumId(id), &body)
            .await
            .map(Into::into)
            .map_err(upstream)
    }

    /// Starts a draft proposal for the caller's consortium.
    async fn create_proposal(
        &self,
        ctx: &Context<'_>,
        input: ProposalInput,
    ) -> async_graphql::Result<Proposal> {
        let authed = caller_with(ctx, &[Role::Consortium], "create a proposal")?;
        let body = dto::DraftProposal {
            call_id: CallId(input.call_id),
            title: input.title,
            summary: input.summary,
            resources: input.resources.into(),
            portfolio: input.portfolio.map(Into::into),
        };
        ctx.data::<Services>()?
            .create_proposal(&authed.token, &body)
            .await
            .map(Proposal)
            .map_err(upstream)
    }

    /// Saves a new version of a draft (until the deadline).
    async fn update_proposal(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: ProposalUpdateInput,
    ) -> async_graphql::Result<Proposal> {
        let authed = caller_with(ctx, &[Role::Consortium], "edit a proposal")?;
        let body = dto::UpdateDraft {
            title: input.title,
            summary: input.summary,
            resources: input.resources.into(),
            portfolio: input.portfolio.map(Into::into),
        };
        ctx.data::<Services>()?
            .update_proposal(&authed.token, ProposalId(id), &body)
            .await
            .map(Proposal)
            .map_err(upstream)
    }

    /// Attaches a document to a draft (base64 content; replaces one of the same kind).
    async fn upload_document(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
        kind: String,
        filename: String,
        content_base64: String,
    ) -> async_graphql::Result<Proposal> {
        let authed = caller_with(ctx, &[Role::Consortium], "upload a document")?;
        let body = dto::UploadDocument {
            filename,
            content_base64,
        };
        ctx.data::<Services>()?
            .upload_document(&authed.token, ProposalId(proposal_id), &kind, &body)
            .await
            .map(Proposal)
            .map_err(upstream)
    }

    /// Submits a draft. Repeating with the same idempotency key returns the same receipt.
    async fn submit_proposal(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
        idempotency_key: String,
    ) -> async_graphql::Result<Receipt> {
        let authed = caller_with(ctx, &[Role::Consortium], "submit a proposal")?;
        ctx.data::<Services>()?
            .submit_proposal(
                &authed.token,
                ProposalId(proposal_id),
                &dto::Submit { idempotency_key },
            )
            .await
            .map(Into::into)
            .map_err(upstream)
    }

    /// Withdraws a submitted proposal before the decision.
    async fn withdraw_proposal(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<Proposal> {
        let authed = caller_with(ctx, &[Role::Consortium], "withdraw a proposal")?;
        ctx.data::<Services>()?
            .withdraw_proposal(
                &authed.token,
                ProposalId(proposal_id),
                &dto::Withdraw { reason },
            )
            .await
            .map(Proposal)
            .map_err(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn korea_time_is_utc_plus_nine() {
        let t = Utc.with_ymd_and_hms(2026, 3, 31, 15, 0, 0).unwrap();
        assert_eq!(kst(t), "2026-04-01 00:00 KST");
    }
}
