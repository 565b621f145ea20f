"""The split Xception, its released parameter names, checkpoint round trips and pretrained loading."""
import pytest
import timm
import torch
from conftest import randomize_bn as _randomize_bn
from timm.models.xception import Xception

from forensics.training import save_part
from models import AntiCompressionDetector, XceptionBaseline, input_size
from models.checkpoints import CheckpointError, load_part
from models.xception import AttentionHead, XceptionTail


def test_shapes_and_released_names():
    torch.manual_seed(0)
    model = AntiCompressionDetector().eval()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        att, attention, features = model.lq_head(x)
        emb = model.tail(att)
    assert features.shape == (2, 728, 19, 19) and attention.shape == (2, 1, 19, 19)
    assert torch.allclose(att, features * attention)
    assert torch.allclose(attention, torch.sigmoid(model.lq_head.map.c(features)))
    assert emb.shape == (2, 2048)
    head_keys = set(model.lq_head.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "block1.rep.0.conv1.weight", "block1.rep.0.pointwise.weight",
                "block1.skip.weight", "block1.skipbn.running_var", "block7.rep.8.weight",
                "map.c.conv1.weight", "map.c.pointwise.weight"):
        assert key in head_keys
    assert not any(k.startswith("block8") for k in head_keys)
    tail_keys = set(model.tail.state_dict())
    assert {"block8.rep.1.pointwise.weight", "block12.skip.weight", "conv3.conv1.weight", "conv4.pointwise.weight",
            "bn4.running_var"} <= tail_keys
    # head + tail hold exactly the layers of a legacy Xception, less its classifier
    xception_keys = {k for k in Xception(num_classes=0).state_dict()}
    assert (head_keys - {"map.c.conv1.weight", "map.c.pointwise.weight"}) | tail_keys == xception_keys


def test_other_image_sizes_follow_the_feature_map():
    model = AntiCompressionDetector().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 128), torch.randn(2, 3, 128, 128))
    assert out["hq_map"].shape == (2, 1, 8, 8) and out["hq_emb"].shape == (2, 2048)


def test_checkpoint_round_trip_in_released_format(tmp_path):
    torch.manual_seed(1)
    model = AntiCompressionDetector().eval()
    _randomize_bn(model)
    optim = torch.optim.Adam(model.tail.parameters())
    save_part(tmp_path / "tail_000003.tar", model.tail, optim)
    save_part(tmp_path / "head_000003.tar", model.lq_head)
    saved = torch.load(tmp_path / "tail_000003.tar", weights_only=True)
    assert set(saved) == {"net", "optim"} and "block8.rep.1.pointwise.weight" in saved["net"]

    fresh = AntiCompressionDetector().eval()
    assert load_part(fresh.tail, tmp_path / "tail_000003.tar")["param_groups"] == optim.state_dict()["param_groups"]
    load_part(fresh.lq_head, tmp_path / "head_000003.tar")
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model.score(x, "c40")[0], fresh.score(x, "c40")[0])


def test_module_prefix_from_dataparallel_loads(tmp_path):
    head = AttentionHead().eval()
    _randomize_bn(head)
    torch.save({"net": {f"module.{k}": v for k, v in head.state_dict().items()}, "optim": {}},
               tmp_path / "head_000001.tar")
    other = AttentionHead().eval()
    load_part(other, tmp_path / "head_000001.tar")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(head(x)[0], other(x)[0])


def test_wrong_architecture_and_truncated_files_are_clear(tmp_path):
    save_part(tmp_path / "tail.tar", XceptionTail())
    with pytest.raises(CheckpointError, match="another architecture"):
        load_part(AttentionHead(), tmp_path / "tail.tar")
    data = (tmp_path / "tail.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_part(XceptionTail(), tmp_path / "cut.tar")
    with pytest.raises(CheckpointError, match="not found"):
        load_part(XceptionTail(), tmp_path / "absent.tar")


def test_pretrained_from_a_local_cadene_file(tmp_path):
    """A Cadene file (2-d pointwise weights, last_linear classifier) initialises both heads and the tail."""
    torch.manual_seed(2)
    imagenet = Xception(num_classes=1000)
    _randomize_bn(imagenet)
    state = {}
    for k, v in imagenet.state_dict().items():
        k = k.replace("fc.", "last_linear.")
        state[k] = v[:, :, 0, 0] if "pointwise" in k else v
    torch.save(state, tmp_path / "xception-cadene.pth")

    model = AntiCompressionDetector()
    map_before = model.hq_head.map.c.pointwise.weight.clone()
    model.init_from(str(tmp_path / "xception-cadene.pth"))
    own = imagenet.state_dict()
    for head in (model.hq_head, model.lq_head):
        assert torch.equal(head.block3.rep[1].pointwise.weight, own["block3.rep.1.pointwise.weight"])
        assert torch.equal(head.bn1.running_var, own["bn1.running_var"])
    assert torch.equal(model.tail.conv4.pointwise.weight, own["conv4.pointwise.weight"])
    assert torch.equal(model.hq_head.map.c.pointwise.weight, map_before)

    baseline = XceptionBaseline()
    baseline.init_from(str(tmp_path / "xception-cadene.pth"))
    assert torch.equal(baseline.block12.skip.weight, own["block12.skip.weight"])
    assert baseline.fc.weight.shape == (2, 2048)


def test_pretrained_mismatch_is_clear(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="not an Xception state dict"):
        AntiCompressionDetector().init_from(str(tmp_path / "resnet.pth"))
    state = Xception(num_classes=0).state_dict()
    state["conv1.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="conv1.weight has shape"):
        AntiCompressionDetector().init_from(str(tmp_path / "other.pth"))
    with pytest.raises(CheckpointError, match="not found"):
        AntiCompressionDetector().init_from(str(tmp_path / "missing.pth"))


def test_per_stream_tail_keeps_each_streams_batch_statistics():
    import copy

    torch.manual_seed(0)
    model = AntiCompressionDetector().train()
    reference = copy.deepcopy(model)
    hq, lq = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64) * 2 + 1
    out = model(hq, lq)
    # the same layers called once per stream, as the released step did
    hq_emb = reference.tail(reference.hq_head(hq)[0])
    lq_emb = reference.tail(reference.lq_head(lq)[0])
    torch.testing.assert_close(out["hq_emb"], hq_emb)
    torch.testing.assert_close(out["lq_emb"], lq_emb)
    for (name, buffer), (_, expected) in zip(model.tail.named_buffers(), reference.tail.named_buffers()):
        torch.testing.assert_close(buffer, expected, msg=name)  # running statistics updated twice, per stream

    joint = copy.deepcopy(reference)
    joint.tail_batch = "joint"
    assert not torch.allclose(joint(hq, lq)["hq_emb"], hq_emb, rtol=1e-3)  # one batch of both mixes them


def test_released_initialisation_of_the_map_and_the_backbone():
    torch.manual_seed(0)
    head = AttentionHead()
    pointwise, depthwise = head.map.c.pointwise.weight, head.map.c.conv1.weight
    assert pointwise.shape == (1, 728, 1, 1) and depthwise.shape == (728, 1, 3, 3)
    # normal(0, sqrt(2 / (k * k * out_channels))): 1.41 for the 728 -> 1 pointwise conv
    assert pointwise.std().item() == pytest.approx(2 ** 0.5, rel=0.1)
    assert depthwise.std().item() == pytest.approx((2 / (9 * 728)) ** 0.5, rel=0.05)
    assert abs(pointwise.mean().item()) < 0.2
    conv = head.block4.rep[1].pointwise.weight  # 728 -> 728, 1x1
    assert conv.std().item() == pytest.approx((2 / 728) ** 0.5, rel=0.02)
    assert torch.equal(head.bn1.weight, torch.ones(32)) and torch.equal(head.bn1.bias, torch.zeros(32))
    tail = XceptionTail()
    assert tail.conv4.pointwise.weight.std().item() == pytest.approx((2 / 2048) ** 0.5, rel=0.02)


def test_each_model_carries_its_input_size_and_normalisation_as_timm_names_them():
    timm_cfg = timm.get_pretrained_cfg("legacy_xception")
    for model in (AntiCompressionDetector(), XceptionBaseline()):
        assert model.pretrained_cfg == {"input_size": timm_cfg.input_size, "mean": timm_cfg.mean, "std": timm_cfg.std}
        assert input_size(model) == 299  # the paper's crops
