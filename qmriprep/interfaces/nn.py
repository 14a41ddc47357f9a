"""Nipype interfaces of the in-silico networks: get (shipped, cached or trained) and apply."""

from __future__ import annotations

import json
import os

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface,
                                    TraitedSpec, isdefined, traits)

from ..utils.images import optional_mask, optional_volume, save_like


class _TrainNetworkInputSpec(BaseInterfaceInputSpec):
    protocol = traits.Dict(mandatory=True, desc="pc-bSSFP protocol fields in SI units (s, rad)")
    protocol_type = traits.Str(desc="protocol dataclass (unused: the network takes the fields)")
    options = traits.Dict(mandatory=True, desc="physics_informed, complex_net (the estimator's "
                          "declaration), NetworkOptions fields (the run's nn section), seed, device")
    noise_sigma = traits.Float(desc="measured noise sigma of the series (signal units)")
    scale_file = File(exists=True, desc="per-voxel norm of the configurations (signal units): its "
                      "median in the mask is the series' level for the noise-matched training SNR")
    mask_file = File(exists=True, desc="brain mask of the series")


class _TrainNetworkOutputSpec(TraitedSpec):
    model_file = File(desc="the network (.pt)")
    provenance = traits.Dict(desc="weights SHA256, source, training settings, seed, loss, time, "
                             "training SNR and noise sigma")
    curve_file = File(desc="JSON training curve (per epoch: train/val loss, seconds)")


class TrainNetwork(SimpleInterface):
    """A network for exactly this protocol (:func:`qmriprep.nn.weights.get_model`), trained for
    the series' noise (:func:`qmriprep.nn.options.matched_training`) when it is measured."""

    input_spec = _TrainNetworkInputSpec
    output_spec = _TrainNetworkOutputSpec

    def _run_interface(self, runtime):
        from ..nn.insilico import as_protocol
        from ..nn.options import NetworkOptions, matched_training, network_settings
        from ..nn.train import PINN, SVNN
        from ..nn.weights import get_model, save_model

        opts = dict(self.inputs.options)
        user = NetworkOptions(**{k: opts[k] for k in NetworkOptions.__dataclass_fields__ if k in opts})
        protocol = as_protocol(self.inputs.protocol)
        sigma = self.inputs.noise_sigma if isdefined(self.inputs.noise_sigma) else None
        matched = matched_training(user, protocol, sigma, self._level())
        training, source = network_settings(user, seed=opts.get("seed", 0), device=opts.get("device", "cpu"),
                                            snr=matched.get("snr"))
        model, prov = get_model(protocol, PINN if opts["physics_informed"] else SVNN,
                                bool(opts["complex_net"]), training, source)
        prov = {**prov, **matched}
        path = os.path.join(runtime.cwd, "model.pt")
        save_model(model, path)
        with open(os.path.join(runtime.cwd, "curve.json"), "w") as fh:
            json.dump(model.curve, fh)
        self._results.update(model_file=path, provenance=prov,
                             curve_file=os.path.join(runtime.cwd, "curve.json"))
        return runtime

    def _level(self) -> float | None:
        """Median configuration norm in the mask (None without a norm map)."""
        scale = optional_volume(self.inputs.scale_file)
        if scale is None:
            return None
        mask = optional_mask(self.inputs.mask_file)
        inside = scale[(mask if mask is not None else np.ones(scale.shape, bool)) & (scale > 0)]
        return float(np.median(inside)) if inside.size else None


class _NetworkFitInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="complex configurations (x, y, z, 3): one file")
    model_file = File(exists=True, mandatory=True)
    provenance = traits.Dict(desc="from TrainNetwork: copied into the sidecars")
    b1_file = File(exists=True, desc="B1+ (fraction); absent: B1 = 1")
    mask_file = File(exists=True)
    protocol = traits.Dict(mandatory=True, desc="protocol fields in SI units (tr: s, to convert theta to Hz)")
    protocol_type = traits.Str(desc="protocol dataclass (unused)")
    noise_meta = traits.Dict(desc="sidecar fields of the series' noise (NoiseSigma, NoiseMethod, SNR)")
    noise_sigma = traits.Float(desc="noise sigma of the acquired series (with noise_basis_file)")
    noise_basis_file = File(exists=True, desc="the noise of the configuration magnitudes of a denoised "
                                              "series (qmriprep.interfaces.bssfp.ConfigurationNoise)")
    scale_file = File(exists=True, desc="per-voxel norm of the configurations (with noise_basis_file)")


class _NetworkFitOutputSpec(TraitedSpec):
    t1 = File()
    t2 = File()
    off_resonance = File(desc="Hz (complex networks)")
    t1_sd = File(desc="standard deviation of T1 (s): the network's heteroscedastic head")
    t2_sd = File(desc="standard deviation of T2 (s)")
    out_of_range = File(desc="uint8 mask: B1+ outside the training range or T1/T2 at its edge")
    meta = traits.Dict(desc="sidecar fields of the learned estimate")


class NetworkFit(SimpleInterface):
    """T1, T2 (and off-resonance ``theta / (2 pi TR)`` in Hz) from a trained network."""

    input_spec = _NetworkFitInputSpec
    output_spec = _NetworkFitOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from ..nn.weights import load_model

        img = nib.load(self.inputs.in_files[0])
        feats = np.asanyarray(img.dataobj)
        model = load_model(self.inputs.model_file)
        b1 = optional_volume(self.inputs.b1_file)
        b1 = 1.0 if b1 is None else b1
        if not model.complex_net:
            feats = np.abs(feats)
        res = model.predict(feats, b1)
        mask = optional_mask(self.inputs.mask_file)
        mask = np.ones(feats.shape[:-1], bool) if mask is None else mask
        res["off_resonance"] = res.get("theta", np.zeros(mask.shape)) / (2 * np.pi * self.inputs.protocol["tr"])
        for key in ("t1_sd", "t2_sd"):  # weights without an uncertainty head: SD unknown, written as 0
            res.setdefault(key, np.zeros(mask.shape, np.float32))
        prov = dict(self.inputs.provenance) if isdefined(self.inputs.provenance) else {}
        self._denoised_sd(res, b1, mask, prov.get("training_noise_sigma"))
        res["out_of_range"] = (res["out_of_range"] & mask).astype(np.uint8)
        for key in ("t1", "t2", "off_resonance", "t1_sd", "t2_sd", "out_of_range"):
            self._results[key] = save_like(np.where(mask, res[key], 0), img,
                                           os.path.join(runtime.cwd, f"{key}.nii.gz"),
                                           **({"dtype": np.uint8} if key == "out_of_range" else {}))
        noise = dict(self.inputs.noise_meta) if isdefined(self.inputs.noise_meta) else {}
        self._results["meta"] = {**noise,
                                 "NetworkWeightsSHA256": prov.get("weights_sha256"),
                                 "NetworkSource": prov.get("source"),
                                 "NetworkArchitecture": prov.get("architecture"),
                                 "TrainingSettings": prov.get("training_settings"),
                                 "RandomSeed": prov.get("seed"),
                                 "TrainingValidationLoss": prov.get("final_val_loss"),
                                 "TrainingSeconds": prov.get("training_seconds"),
                                 "TrainingSNR": prov.get("snr"),
                                 "TrainingNoiseSigma": prov.get("training_noise_sigma"),
                                 "OutOfRangeVoxels": int(res["out_of_range"].sum())}
        return runtime

    def _denoised_sd(self, res, b1, mask, training_sigma):
        """On a denoised series, the head's SD with its noise part for the training's i.i.d. noise
        replaced by that of the denoised noise (:func:`qmriprep.fit.uncertainty.denoised_network_sd`)."""
        inputs = (self.inputs.noise_basis_file, self.inputs.noise_sigma, self.inputs.scale_file)
        if not (all(isdefined(x) for x in inputs) and training_sigma):
            return
        from ..fit.denoise import NoiseBasis
        from ..fit.uncertainty import denoised_network_sd
        from ..nn.insilico import as_protocol

        basis = NoiseBasis.load(self.inputs.noise_basis_file)
        res.update(denoised_network_sd(res, b1, as_protocol(self.inputs.protocol),
                                       sigma=self.inputs.noise_sigma, training_sigma=training_sigma,
                                       norm=optional_volume(self.inputs.scale_file), basis=basis,
                                       mask=mask & basis.mask))
