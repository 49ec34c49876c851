"""Pattern tables for the rule-based report labeler (``lrclr.reports.labeler``).

Everything the labeler knows lives here, so a radiologist can read and correct it without reading
code. Patterns are Python regular expressions applied to a lower-cased sentence in which each
de-identification mark ``XXXX`` has been replaced by ``####`` (same length, so offsets hold, and no
pattern can match through it). Conventions:

* In a finding pattern, capturing groups are the trigger words shown to the user (e.g. "heart" and
  "enlarged" in "heart is mildly enlarged"); a pattern without groups triggers on its whole match.
  Everything else must be a non-capturing group ``(?:...)``.
* ``EXCLUSIONS`` are look-alike phrases that never trigger their finding ("pericardial effusion" is
  not a pleural effusion).
* ``NORMAL_STATEMENTS`` are sentences that deny a finding without a negation word ("heart size is
  normal"); they produce negated mentions.

Sources of the vocabulary: radiology usage (Fleischner Society glossary), the NIH ChestX-ray14 and
CheXpert label definitions, and the conventions of NegEx/NegBio for cue words. The rules were
written from that knowledge and checked on half of the OpenI reports (even positions in report-id
order); the other half is held out (see BENCHMARKS.md).
"""

from __future__ import annotations

FINDING_PATTERNS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (
        r"\b(atelecta(?:sis|ses|tic))\b",
        # Lobar or lung collapse is atelectasis; "collapse" of a vertebra is excluded below.
        r"\b(collapse[ds]?)\b(?!\s+(?:of\s+(?:the\s+)?)?(?:vertebra|vertebral|t\d|l\d))",
    ),
    "Cardiomegaly": (
        r"\b(cardiomegaly)\b",
        r"\b(cardiac|heart)\s+(enlargement)\b",
        r"\b(enlarge(?:d|ment\s+of\s+the))\s+(?:\w+\s+){0,2}?(heart|cardiac\s+(?:silhouette|shadow|contour|size))\b",
        # "heart size is mildly enlarged", "cardiac silhouette appears enlarged": subject ... state.
        # "heart size is mildly enlarged", "heart size XXXX borderline enlarged", "heart size upper
        # limits normal or mildly enlarged": subject, then up to five words (no new clause), state.
        r"\b(heart|cardiac\s+(?:silhouette|shadow|contour|size))(?:\s+(?:size|####))?\s+"
        r"(?:(?!(?:and|but|with|the|normal)\b)[\w#]+\s+){0,5}?(enlarged|increased|large|prominent)\b",
        # A borderline heart is reported as a (mild) finding; "upper limits of normal" is normal.
        r"\b(borderline)\s+(?:\w+\s+)?(cardiomegaly|heart\s+size|enlarged\s+heart|cardiac\s+enlargement)",
    ),
    "Effusion": (
        r"\b(effusions?)\b",
        r"\b(pleural\s+fluid)\b",
        r"\b(hydropneumothora(?:x|ces)|hemothorax)\b",
        # Blunting of a costophrenic angle is how a small effusion shows on a frontal film.
        r"\b(blunt(?:ing|ed)?)\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+){0,2}?(costophrenic)",
        r"\b(costophrenic)\s+(?:angles?\s+|sulcus\s+|####\s+)?(?:(?:is|are)\s+)?(blunt(?:ing|ed)?)\b",
        r"\b(fluid)\s+(?:\w+\s+){0,2}?(?:in|within|along)\s+(?:the\s+)?(?:\w+\s+){0,2}?(fissures?|pleural\s+space)\b",
    ),
    "Infiltration": (r"\b(infiltrat(?:es?|ion|ive))\b",),
    "Mass": (r"\b(mass(?:es)?)\b", r"\b(tumou?rs?)\b"),
    # Nouns only: "nodular" describes a pattern or the shape of an opacity ("nodular interstitial
    # pattern", "patchy nodular opacities" of infection), not a discrete nodule.
    "Nodule": (r"\b(nodules?|micronodules?)\b",),
    "Pneumonia": (r"\b((?:broncho)?pneumonias?)\b", r"\b(pneumonitis)\b"),
    "Pneumothorax": (r"\b(pneumothora(?:x|ces|xes))\b", r"\b(hydropneumothora(?:x|ces))\b"),
    "Consolidation": (r"\b(consolidat(?:ion|ions|ive|ed))\b",),
    "Edema": (
        r"\b(o?edema(?:tous)?)\b",
        # Vascular congestion and redistribution are the earliest radiographic signs of edema.
        r"\b(congestion)\b",
        r"\b(cephalization)\b",
        r"\b(pulmonary\s+venous\s+hypertension)\b",
        r"\b(vascular(?:ity)?|vasculature|vessels)\s+(?:\w+\s+){0,2}?(prominence|engorge(?:d|ment)|redistribution|indistinct(?:ness)?)\b",
        r"\b(prominen(?:t|ce)|increased|engorged|indistinct)\s+(?:\w+\s+){0,2}?(?:pulmonary\s+|lung\s+|central\s+)?(vascular(?:ity)?|vasculature|vessels)\b",
        r"\b(indistinct)\s+(vascular\s+(?:margins?|margination))\b",
        r"\b(kerley)\b",
        r"\b(fluid\s+overload)\b",
    ),
    "Emphysema": (r"\b(emphysema(?:tous)?)\b", r"\b(bullae|bullous|bulla)\b"),
    "Fibrosis": (r"\b(fibros(?:is|es)|fibrotic)\b", r"\b(honeycomb(?:ing)?)\b"),
    "Pleural_Thickening": (
        r"\b(pleural)\s+(?:\w+\s+){0,1}?(thickening|plaques?|calcifications?)\b",
        r"\b(thicken(?:ing|ed))\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?(pleura)\b",
        r"\b(apical)\s+(?:pleural\s+)?(cap(?:ping)?s?)\b",
        r"\b(pleural[- ]parenchymal)\s+(scar(?:ring)?|thickening)\b",
    ),
    "Hernia": (r"\b(hernia(?:s|tion)?)\b",),
    "Enlarged Cardiomediastinum": (
        r"\b(widen(?:ed|ing))\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?(mediastin(?:um|al))",
        r"\b(mediastin(?:um|al)(?:\s+(?:silhouette|contours?|width))?)\s+(?:is|are|appears?)\s+(?:\w+\s+){0,2}?(widened|wide|enlarged|prominent)",
        r"\b(enlarged)\s+(cardiomediastinal\s+silhouette|mediastin(?:um|al\s+silhouette))",
        r"\b(cardiomediastinal\s+silhouette)\s+(?:is|are|appears?)\s+(?:\w+\s+){0,2}?(enlarged|widened|prominent)",
    ),
    "Lung Opacity": (
        r"\b(opaci(?:ty|ties|fication|fied))\b",
        r"\b(densit(?:y|ies))\b",
        r"\b(air\s*space)\s+(disease|process)\b",
        r"\b(infiltrat(?:es?|ion|ive))\b",
        # Consolidation and ground glass are opacities by definition (Fleischner glossary).
        r"\b(consolidat(?:ion|ions|ive|ed))\b",
        r"\b(ground[- ]glass|haz(?:y|iness))\b",
    ),
    "Lung Lesion": (
        r"\b(nodules?|micronodules?)\b",
        r"\b(mass(?:es)?)\b",
        r"\b(lesions?|tumou?rs?|neoplasms?|carcinoma|malignan(?:cy|t)|metasta(?:sis|ses|tic))\b",
        r"\b(cavit(?:y|ies|ary))\b",
    ),
    "Pleural Other": (
        r"\b(pleural)\s+(?:\w+\s+){0,1}?(thickening|plaques?|calcifications?|scar(?:ring)?)\b",
        r"\b(fibrothorax)\b",
        r"\b(pleural[- ]parenchymal)\s+(scar(?:ring)?|thickening)\b",
    ),
    "Fracture": (r"\b(fractur(?:es?|ed))\b", r"\b(fx)\b"),
    "Support Devices": (
        r"\b(catheters?|lines?|tubes?|drains?|ports?|portacath|picc|cvc|swan[- ]ganz)\b",
        r"\b(pacemakers?|pacers?|aicd|icd|defibrillators?|leads?|generator|electrodes?)\b",
        r"\b(stents?|clips?|coils?|filters?|valves?|prosthe(?:sis|tic)|hardware|sutures?|staples?)\b",
        # Sternotomy implies its wires, which OpenI often de-identifies ("sternotomy XXXX").
        r"\b(sternotomy)\b",
        r"\b(wires?|devices?|stimulators?|tubing|shunts?|fixation|tracheostomy)\b",
        r"\b(endotracheal|nasogastric|orogastric|enteric|ng|et)\s+(tubes?)\b",
        # Only a line or tube has a tip in the SVC or stomach; OpenI often de-identifies the
        # device's name ("Right chest XXXX tip in the SVC").
        r"\b(tips?)\b(?=\s+(?:[\w#]+\s+){0,6}?(?:svc|vena\s+cava|cavoatrial|(?:right\s+)?atri(?:um|al)|carina|stomach|"
        r"brachiocephalic|jugular|subclavian))",
    ),
}

EXCLUSIONS: dict[str, tuple[str, ...]] = {
    # Fluid around the heart or in a joint is not a pleural effusion.
    "Effusion": (r"\b(?:pericardial|joint|knee|shoulder|glenohumeral)\s+(?:\w+\s+)?effusions?\b",),
    "Atelectasis": (),
    # Subcutaneous / soft-tissue emphysema is air in soft tissue, not lung destruction.
    "Emphysema": (r"\b(?:subcutaneous|soft[- ]tissue|mediastinal|interstitial)\s+emphysema\b",),
    "Edema": (
        r"\b(?:soft[- ]tissue|subcutaneous|extremity|scalp)\s+(?:\w+\s+)?edema\b",
        # Prominent pulmonary arteries are arterial hypertension, not venous congestion.
        r"\b(?:arter(?:y|ies|ial)|aort\w*|hil(?:um|a|ar))\s+(?:\w+\s+){0,2}?(?:prominence|vascularity)\b",
        r"\bpulmonary\s+arter\w+\s+hypertension\b",
    ),
    # "mass effect" is displacement, not a mass; "massive" is a size word (\b already excludes it).
    "Mass": (r"\bmass\s+effect\b", r"\bbreast\s+mass(?:es)?\b", r"\bsoft[- ]tissue\s+mass\b"),
    "Lung Lesion": (
        r"\bmass\s+effect\b",
        r"\b(?:bone|bony|osseous|lytic|blastic|sclerotic|skin|cutaneous|breast|soft[- ]tissue)\s+(?:\w+\s+)?(?:lesions?|mass(?:es)?)\b",
    ),
    "Lung Opacity": (
        # Density of bone or soft tissue is not a lung opacity; "opacity of the breast" neither.
        r"\b(?:bone|bony|osseous|mineral|soft[- ]tissue|breast|nipple|metallic|calcific)\s+densit(?:y|ies)\b",
        r"\bdensit(?:y|ies)\s+(?:of|in)\s+(?:the\s+)?(?:bones?|spine|vertebra\w*|soft\s+tissues?)\b",
        r"\b(?:nipple|breast|soft[- ]tissue)\s+(?:shadow\s+)?opacit(?:y|ies)\b",
    ),
    "Hernia": (r"\b(?:disc|disk)\s+hernia\w*\b", r"\b(?:inguinal|umbilical)\s+hernias?\b"),
    "Support Devices": (
        # Anatomic "lines" and other look-alikes of device words.
        r"\b(?:pleural|fissure|fissural|kerley|septal|azygoesophageal|paraspinal|paratracheal|"
        r"midline|skin|plate-?like|linear|reticular|mach|junction|b|hairline|fracture|lung)[\s-]+lines?\b",
        r"\blines?\s+of\s+(?:the\s+)?(?:\w+\s+)?(?:fissure|pleura)\b",
        r"\b(?:lymph|left|right)\s+(?:\w+\s+)?(?:node|nodes)\b",
        r"\b(?:aortic|mitral|tricuspid|pulmonic)\s+valves?\s+(?:calcification|calcified|annul\w*)\b",
        r"\b(?:calcified|calcification\s+of\s+the)\s+(?:aortic|mitral)\s+(?:valves?|annulus)\b",
        r"\bleads?\s+to\b",
        r"\bfalse\s+lines?\b|\bline\s+of\s+sight\b",
        r"\b(?:in|on|at)\s+line\s+with\b",
    ),
    "Fracture": (),
}

NORMAL_STATEMENTS: dict[str, tuple[str, ...]] = {
    # A normal heart is a denied cardiomegaly; "upper limits of normal" is borderline, not normal.
    "Cardiomegaly": (
        r"\b(?:normal|unremarkable)\s+(?:\w+\s+)?(?:heart|cardiac)(?:\s+(?:size|silhouette|contour))?\b",
        r"\b(?:heart|cardiac\s+(?:size|silhouette|contour|shadow))(?:\s+size)?\s+(?:is\s+|are\s+|appears?\s+|remains?\s+)?"
        r"(?:\w+\s+){0,3}?(?:normal|within\s+normal\s+limits|unremarkable)\b",
    ),
    "Enlarged Cardiomediastinum": (
        r"\b(?:normal|unremarkable)\s+(?:cardio)?mediastin(?:um|al)(?:\s+(?:silhouette|contours?))?\b",
        r"\b(?:cardio)?mediastin(?:um|al)(?:\s+(?:silhouette|contours?))?\s+(?:is\s+|are\s+|appears?\s+)?"
        r"(?:\w+\s+){0,4}?(?:normal|within\s+normal\s+limits|unremarkable)\b",
    ),
}

# Cue phrases. Order does not matter; the longest match at a position wins.
PRE_NEGATION = (
    r"no", r"not", r"without", r"negative\s+for", r"clear\s+of", r"free\s+of", r"absence\s+of",
    r"absent", r"resolved", r"resolution\s+of", r"removal\s+of", r"removed", r"interval\s+removal\s+of",
    r"nor", r"neither", r"never", r"denies",
    r"no\s+(?:\w+\s+)?evidence\s+of", r"no\s+(?:radiographic\s+)?signs?\s+of", r"lack\s+of",
    r"there\s+is\s+no", r"there\s+are\s+no", r"cleared", r"clearing\s+of",
)
POST_NEGATION = (
    r"(?:(?:is|are|was|were|has\s+been|have\s+been)\s*)?not\s+(?:\w+\s+)?(?:seen|identified|present|visualized|"
    r"appreciated|demonstrated|evident|noted|detected|apparent|visible|observed|shown)",
    r"(?:has|have)\s+(?:\w+\s+)?(?:resolved|cleared|disappeared|been\s+removed)",
    r"(?:is|are|was|were)\s+(?:\w+\s+)?(?:resolved|absent|gone|removed|cleared)",
    r"resolved", r"no\s+longer\s+(?:\w+\s+)?(?:seen|visualized|present|evident|identified|visible|apparent)",
    r"(?:is|are)\s+(?:now\s+)?no\s+longer", r"(?:has|have)\s+been\s+(?:\w+\s+)?excluded",
    # "pulmonary vascular engorgement appear(s) within limits of normal" denies the engorgement.
    r"(?:is|are|appears?|remains?)\s+(?:\w+\s+)?(?:within\s+normal\s+limits|within\s+limits\s+of\s+normal|normal)",
    r"(?:is|are|has\s+been|have\s+been)\s+ruled\s+out",
)
PRE_UNCERTAINTY = (
    r"may", r"might", r"could", r"possible", r"possibly", r"questionable", r"question\s+of", r"questioned", r"question",
    r"suspicious\s+for", r"suspected", r"suspect", r"concerning\s+for", r"concern\s+for", r"worrisome\s+for",
    r"cannot\s+(?:be\s+)?(?:entirely\s+|completely\s+|totally\s+)?(?:excluded?|ruled?\s+out)",
    r"can\s*not\s+(?:be\s+)?(?:excluded?|ruled?\s+out)", r"can't\s+(?:be\s+)?(?:excluded?|ruled?\s+out)",
    r"not\s+(?:be\s+)?(?:entirely\s+|completely\s+|totally\s+)?(?:excluded|ruled\s+out)",
    r"difficult\s+to\s+(?:exclude|rule\s+out)", r"differential(?:\s+diagnosis)?(?:\s+includes?)?",
    r"versus", r"vs\.?", r"equivocal", r"indeterminate", r"uncertain",
    # "no opacity to suggest pneumonia" is a denial, so "to suggest" is not a hedge.
    r"(?<!to\s)suggest(?:s|ing|ive\s+of|ed)?", r"consider(?:ed)?", r"presum(?:ed|ably)", r"perhaps",
    r"either", r"or\s+possibly", r"rule\s+out", r"r/o",
    # "probable"/"likely" are deliberately NOT hedges: radiologists use them for "more likely than
    # not", and readers act on them as findings (CheXpert's labeler differs here).
)
POST_UNCERTAINTY = (
    r"(?:cannot|can\s+not|can't|could\s+not|not)\s+(?:be\s+)?(?:entirely\s+|completely\s+|totally\s+|definitely\s+)?"
    r"(?:excluded|ruled\s+out|exclude)",
    r"(?:is|are)\s+(?:not\s+)?(?:excluded)\s+",
    r"(?:is|are)\s+(?:possible|questioned|suspected|not\s+excluded|uncertain|difficult\s+to\s+exclude)",
    # "not well seen" is a limit of the film, not a denial.
    r"(?:(?:is|are|was|were)\s*)?not\s+well[- ](?:seen|visualized|evaluated|demonstrated)",
    r"versus", r"vs\.?", r"\?",
)
# Phrases that contain a negation word but do not deny a finding ("no change in the effusion").
PSEUDO_NEGATION = (
    r"no\s+(?:significant\s+|appreciable\s+|substantial\s+|definite\s+)?(?:interval\s+)?change",
    r"not\s+(?:significantly\s+|substantially\s+|markedly\s+)?(?:changed|increased|decreased|worsened|improved)",
    r"no\s+(?:significant\s+)?(?:increase|decrease|worsening|improvement|progression)",
    r"not\s+only", r"without\s+(?:significant\s+|interval\s+)?change", r"no\s+new\s+or\s+worsening",
    r"unchanged", r"gram\s+negative",
    # Partly resolved is still present.
    r"(?:partial(?:ly)?|incomplete(?:ly)?|near(?:ly)?|almost|slowly|not\s+(?:completely|fully))\s+(?:complete(?:ly)?\s+)?resol\w+",
    r"not\s+(?:completely|entirely|fully)\s+(?:clear(?:ed)?|removed)",
)

# Clause boundaries end a cue's scope: "no effusion but there is atelectasis".
CLAUSE_BOUNDARIES = (
    r";", r":", r"\bbut\b", r"\bhowever\b", r"\balthough\b", r"\bthough\b", r"\bwhich\b", r"\bwhereas\b",
    r"\bwhile\b", r"\bexcept\b", r"\bother\s+than\b", r"\baside\s+from\b", r"\bapart\s+from\b",
    r"\botherwise\b", r"\b(?=there\s+(?:is|are|has\s+been|have\s+been)\b(?!\s+no\b))", r"\bwith\s+(?:the\s+)?exception\b",
    # A comma or "and" followed by a new subject starts a new statement; a comma inside a list of
    # findings ("no effusion, pneumothorax, or consolidation") does not.
    # The boundary stops before the new subject so that "... and there is no effusion" keeps its cue.
    r",(?=\s+(?:and\s+)?(?:the|a|an|there|stable|persistent|again)\b)", r"\band\b(?=\s+(?:the|a|an|there)\b)",
)

LATERALITY = (
    ("bilateral", r"\b(?:bilateral(?:ly)?|both|bi(?:basilar|basal|apical|lateral))\b"),
    ("left", r"\b(?:left|lingula[r]?|lul|lll)\b"),
    ("right", r"\b(?:right|rul|rml|rll)\b"),
)
ZONES = (
    ("base", r"\b(?:bases?|basilar|basal|bibasilar|bibasal|costophrenic|infrahilar)\b"),
    ("apex", r"\b(?:ap(?:ex|ices|ical)|biapical)\b"),
    ("retrocardiac", r"\bretrocardiac\b"),
    ("perihilar", r"\b(?:perihilar|hil(?:ar|um|a))\b"),
    ("upper", r"\b(?:upper|rul|lul)\b"),
    ("middle", r"\b(?:middle|mid|midlung|mid-lung|lingula[r]?|rml)\b"),
    ("lower", r"\b(?:lower|rll|lll)\b"),
)
