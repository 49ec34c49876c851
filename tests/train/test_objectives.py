"""The objectives for little labelled data: soft label targets, the prompt-score term, held-out
findings, and attention that depends on the word."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrclr.model.config import tiny_config
from lrclr.model.losses import label_targets
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.model.letterbox import prepare_images
from lrclr.findings import NIH_FINDINGS
from train.datasets.held_out import hold_out, strip_findings
from train.datasets.labels import label_matrix
from train.training.prompt_loss import PromptScoreTerm
from train.datasets.sample import Sample
from train.training.sentence_loss import SentencePairTerm, multi_positive_loss, sentence_targets


def test_label_targets_share_weight_between_identical_finding_sets():
    labels = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 0], [-1, -1]])
    targets, offset = label_targets(labels, mix=1.0)
    assert offset == 0
    torch.testing.assert_close(targets.sum(-1), torch.ones(5))
    assert targets[0, 0] == pytest.approx(0.5) and targets[0, 1] == pytest.approx(0.5)  # same finding
    assert targets[2, 3] == pytest.approx(0.5) and targets[2, 0] == 0  # two normal studies match
    torch.testing.assert_close(targets[4], torch.tensor([0, 0, 0, 0, 1.0]))  # unlabelled: its own pair only
    half, _ = label_targets(labels, mix=0.5)
    assert half[0, 0] == pytest.approx(0.75)
    assert label_targets(labels, mix=0.0) == (None, 0) and label_targets(None, 1.0) == (None, 0)


def test_label_matrix_marks_missing_and_uncertain_labels_unknown():
    table = label_matrix([{"Effusion": 1, "Mass": -1}, {}], findings=("Effusion", "Mass", "Edema"))
    assert table.tolist() == [[1, -1, -1], [-1, -1, -1]]


def _images(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.random((64, 64)).astype(np.float32) for _ in range(n)]


def test_prompt_term_scores_what_the_app_shows_and_learns_the_labels():
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config(), pretrained_towers=False)
    findings = ["Effusion", "Mass"]
    images = _images(8)
    # Bright images have "Effusion", dark ones not: learnable from the pixels.
    for i in range(4):
        images[i] = np.clip(images[i] * 0.3 + 0.7, 0, 1)
    labels = torch.tensor([[1, 0]] * 4 + [[0, 1]] * 4)
    term = PromptScoreTerm(model, findings, findings, torch.device("cpu"), text_frozen=False)
    pixels, boxes = prepare_images(images, model.config.image_size)

    model.eval()
    with torch.no_grad():
        features = model.encode_image(pixels, boxes)
        text = model.project_text_states(model.text_tower(term.tokens.input_ids, term.tokens.attention_mask), term.tokens)
        from lrclr.model.zero_shot import prompt_features, prompt_logits

        trained_logits = prompt_logits(model.scoring_rule(), features, prompt_features(findings, text))
    np.testing.assert_allclose(trained_logits.numpy(), model.zero_shot(images, findings).logits, rtol=1e-4, atol=1e-5)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = term.loss(model, model.encode_image(pixels, boxes), labels)
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.5 * first
    assert model.text_projection.weight.grad is not None  # the prompts move too
    model.eval()
    scores = model.zero_shot(images, findings).probabilities
    assert scores[:4, 0].min() > scores[4:, 0].max()


def test_prompt_term_ignores_unknown_labels():
    model = LRCLRModel(tiny_config(), pretrained_towers=False)
    term = PromptScoreTerm(model, ["Effusion"], ["Effusion"], torch.device("cpu"), text_frozen=True)
    pixels, boxes = prepare_images(_images(2), model.config.image_size)
    loss = term.loss(model, model.encode_image(pixels, boxes), torch.tensor([[-1], [-1]]))
    assert float(loss) == 0.0
    with pytest.raises(ValueError, match="label column"):
        PromptScoreTerm(model, ["Edema"], ["Effusion"], torch.device("cpu"), text_frozen=True)


def test_held_out_findings_leave_no_sentence_label_or_mask_behind():
    report = ("Small right pneumothorax. No pleural effusion. Heart size is normal. "
              "There is no pneumothorax on the left. Emphysematous changes.")
    stripped = strip_findings(report, {"Pneumothorax"})
    assert "pneumothorax" not in stripped.lower()
    assert "No pleural effusion." in stripped and "Heart size is normal." in stripped
    sample = Sample("x", "p", np.zeros((8, 8), np.float32), report, {"Pneumothorax": 1, "Effusion": 0},
                    masks={"Pneumothorax": np.ones((8, 8), bool)})
    held = hold_out(sample, frozenset({"Pneumothorax"}))
    assert held.labels == {"Effusion": 0} and held.masks == {} and "pneumothorax" not in held.report.lower()
    assert hold_out(sample, frozenset()) is sample


def _attention(model, words: list[str]):
    image = _images(1, seed=3)[0]
    case = model.encode_case(image)
    explanation = model.explain(case, " ".join(words), findings=())
    return np.array([w.region_attention for w in explanation.words])


def test_cosine_attention_makes_different_words_attend_differently():
    torch.manual_seed(0)
    flat = LRCLRModel(tiny_config(), pretrained_towers=False).eval()
    torch.manual_seed(0)
    sharp = LRCLRModel(tiny_config(attention_cosine_scale=30.0), pretrained_towers=False).eval()
    sharp.load_state_dict(flat.state_dict())  # same weights: only the cosine term differs
    words = ["effusion", "heart", "apex", "nodule"]
    spread_flat = _attention(flat, words).std(axis=0).mean()
    spread_sharp = _attention(sharp, words).std(axis=0).mean()
    assert spread_sharp > 3 * spread_flat


@pytest.mark.parametrize("layers", [1, 2])
def test_pairwise_scores_match_the_paired_forward_with_the_cosine_term(layers):
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config(attention_cosine_scale=10.0, interaction_layers=layers),
                       pretrained_towers=False).eval()
    pixels, boxes = prepare_images(_images(3), model.config.image_size)
    with torch.no_grad():
        image = model.encode_image(pixels, boxes)
        text = model.encode_text(model.tokenize(["left effusion", "enlarged heart size", "no nodule seen"]))
        regions = image.regions
        pairwise = model.interaction.pairwise_scores(regions.embeddings, regions.logits, text.tokens, text.word_mask)
        for i in range(3):
            for t in range(3):
                single = model.interaction(text.tokens[t : t + 1], text.word_mask[t : t + 1],
                                           regions.embeddings[i : i + 1], regions.logits[i : i + 1]).pair_scores
                assert float(pairwise[i, t]) == pytest.approx(float(single[0]), abs=1e-5)


def test_training_findings_are_the_nih_vocabulary():
    from train.datasets.labels import LABEL_FINDINGS

    assert LABEL_FINDINGS == NIH_FINDINGS


def test_the_regions_local_mode_scores_the_best_matching_selected_region():
    import math

    torch.manual_seed(0)
    model = LRCLRModel(tiny_config(zero_shot_local_mode="regions", zero_shot_local_weight=1.0),
                       pretrained_towers=False).eval()
    images = _images(2)
    scores = model.zero_shot(images, ["Effusion"])
    pixels, boxes = prepare_images(images, model.config.image_size)
    with torch.no_grad():
        regions = model.encode_image(pixels, boxes).regions.embeddings
        prompt = model.prompt_features(["Effusion"])[0]
    gamma = model.interaction.gamma

    def smooth_max(text):
        cosine = regions @ text
        return (torch.logsumexp(gamma * cosine, -1) - math.log(cosine.shape[-1])) / gamma

    expected = model.logit_scale.exp() * (smooth_max(prompt.global_positive) - smooth_max(prompt.global_negative))
    np.testing.assert_allclose(scores.logits[:, 0], expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="zero_shot_local_mode"):
        tiny_config(zero_shot_local_mode="patches")


def test_sentence_targets_make_every_shared_sentence_a_positive_of_each_report_that_says_it():
    reports = ["Small left effusion. No pneumothorax.", "No pneumothorax. Heart is enlarged.", ""]
    sentences, targets = sentence_targets(reports)
    assert sentences == ["Small left effusion.", "No pneumothorax.", "Heart is enlarged."]
    assert targets.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    # Uniform scores: each direction's cross-entropy is log 3 (the empty report's row is left out,
    # its image stays a negative for every sentence).
    assert float(multi_positive_loss(torch.zeros(3, 3), targets)) == pytest.approx(np.log(3), abs=1e-6)
    # Scores that put each image on its own sentences: image to sentences spreads over two positives
    # (log 2 is its floor), sentence to images is nearly exact except the shared sentence (log 2).
    sharp = 20 * targets - 10
    expected = (np.log(2) + (2 * 0 + np.log(2)) / 3) / 2
    assert float(multi_positive_loss(sharp, targets)) == pytest.approx(expected, abs=1e-3)


def test_sentence_term_learns_which_sentences_go_with_which_image():
    torch.manual_seed(0)
    model = LRCLRModel(tiny_config(), pretrained_towers=False)
    images = _images(6)
    for i in range(3):
        images[i] = np.clip(images[i] * 0.3 + 0.7, 0, 1)
    reports = ["Large effusion. Heart normal."] * 3 + ["No effusion. Heart normal."] * 3
    pixels, boxes = prepare_images(images, model.config.image_size)
    for frozen in (True, False):
        term = SentencePairTerm(torch.device("cpu"), text_frozen=frozen)
        if frozen:
            model.eval()  # no dropout: the cached states must be the tower's own
            with torch.no_grad():
                tokens = model.tokenize(["Large effusion."])
                direct = model.text_tower(tokens.input_ids, tokens.attention_mask)
                term.loss(model, model.encode_image(pixels, boxes), reports)
            torch.testing.assert_close(term.states["Large effusion."].float(), direct[0].float(), atol=2e-3, rtol=1e-2)
            model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = term.loss(model, model.encode_image(pixels, boxes), reports)
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Its floor is well above 0 ("Heart normal." is a positive of all six images): about 1.0 here.
    assert losses[-1] < losses[0] - 0.15
    model.eval()
    with torch.no_grad():
        image = model.encode_image(pixels, boxes).global_embedding
        text = model.encode_text(model.tokenize(["Large effusion.", "No effusion."])).global_embedding
    closer = (image @ text.T).argmax(-1).tolist()
    assert closer == [0, 0, 0, 1, 1, 1]


def test_the_objective_weighs_each_term_once_and_sums_them_in_one_order():
    from train.training.objective import TERMS, Objective

    objective = Objective(local=0.5, localization=2.0, prompt=0.25, sentence=3.0, flag=4.0)
    values = {name: torch.tensor(float(i + 1)) for i, name in enumerate(TERMS)}  # 1, 2, ..., 6
    assert float(objective.total(values)) == 1 + 0.5 * 2 + 2.0 * 3 + 0.25 * 4 + 3.0 * 5 + 4.0 * 6
    assert float(objective.total({"global_loss": values["global_loss"], "local_loss": None})) == 1.0
    shuffled = dict(reversed(list(values.items())))
    assert torch.equal(objective.total(shuffled), objective.total(values))
    with pytest.raises(KeyError):
        objective.total({"typo_loss": torch.tensor(1.0)})
    with pytest.raises(ValueError):
        objective.total({"local_loss": None})
