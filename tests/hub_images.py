"""Tiny keras_hub image classifiers, one per family that builds offline from a
configuration (random weights, 32×32 images): the rows of docs/real_models.md's
keras_hub table come from tests/test_vit.py running every method on these."""

import keras
import keras_hub

import hub_models as H

M = keras_hub.models


def _classifier(task, backbone, classes=3, **kwargs):
    return task(backbone, num_classes=classes, **kwargs)


def resnet():
    return _classifier(M.ResNetImageClassifier, M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=H.IMAGE))


def efficientnet():
    return _classifier(M.EfficientNetImageClassifier, M.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=["fused", "unfused"],
        width_coefficient=1.0, depth_coefficient=1.0, num_features=32, input_shape=H.IMAGE))


def mobilenet():
    return _classifier(M.MobileNetImageClassifier, M.MobileNetBackbone(
        stackwise_expansion=[[16], [32]], stackwise_num_blocks=[1, 1],
        stackwise_num_filters=[[8], [16]], stackwise_kernel_size=[[3], [3]],
        stackwise_num_strides=[[2], [2]], stackwise_se_ratio=[[None], [0.25]],
        stackwise_activation=[["relu"], ["hard_swish"]], output_num_filters=32,
        input_activation="hard_swish", output_activation="hard_swish", input_num_filters=8,
        image_shape=H.IMAGE, depthwise_filters=8, squeeze_and_excite=0.5,
        stackwise_padding=[[1], [1]], depthwise_stride=2, depthwise_residual=False,
        last_layer_filter=32))


def densenet():
    return _classifier(M.DenseNetImageClassifier, M.DenseNetBackbone(
        stackwise_num_repeats=[1, 1], growth_rate=8, image_shape=H.IMAGE))


def vgg():
    return _classifier(M.VGGImageClassifier, M.VGGBackbone(
        stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=H.IMAGE),
        pooling="avg", pooling_hidden_dim=16)


def xception():
    return _classifier(M.XceptionImageClassifier, M.XceptionBackbone(
        stackwise_conv_filters=[[8, 16], [16, 32]], stackwise_pooling=[True, False],
        image_shape=H.IMAGE))


def cspnet():
    return _classifier(M.CSPNetImageClassifier, M.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1],
        stackwise_strides=[1, 2], stackwise_num_filters=[8, 16], block_type="dark_block",
        stage_type="dark",
        image_shape=H.IMAGE))


def swin():
    return _classifier(M.SwinTransformerImageClassifier, M.SwinTransformerBackbone(
        image_shape=H.IMAGE, embed_dim=8, depths=(1, 1), num_heads=(1, 2), window_size=4,
        patch_size=4, drop_path=0.0))


def mit():
    return _classifier(M.MiTImageClassifier, M.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2], hidden_dims=[8, 16], image_shape=H.IMAGE))


FAMILIES = {"ResNet": resnet, "EfficientNet": efficientnet, "MobileNet": mobilenet,
            "DenseNet": densenet, "VGG": vgg, "Xception": xception, "CSPNet": cspnet,
            "ViT": H.vit, "DeiT": H.deit, "DINOv2": H.dinov2, "Swin": swin, "MiT": mit}


def build(name, seed=0):
    keras.utils.set_random_seed(seed)
    return FAMILIES[name]()
