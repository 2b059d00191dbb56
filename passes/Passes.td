//===- Passes.td - vlora transformation passes ---------------*- tablegen -*-===//
//
// Every vlora pass is declared here; the generated registration and base
// classes are used by passes/*.cpp and tools/vlora-opt.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_TD
#define VLORA_PASSES_TD

include "mlir/Pass/PassBase.td"

def VLoRAClassifyTowers : Pass<"vlora-classify-towers", "mlir::ModuleOp"> {
  let summary = "Tag every frozen-weight matmul with tower, block, layer and HF module path";
  let description = [{
    Sets `vlora.tower` (vision | projector | language | other), `vlora.block`
    (attention | mlp | other), `vlora.layer` and `vlora.module` on every
    `vlora.matmul` one of whose operands is (a transpose/reshape/cast of) a
    frozen `vlora.param`, from two independent signals:

    * names: the weight's initializer name (dynamo exporter: the parameter's
      fully qualified name) or the op's ONNX node name (TorchScript exporter:
      `/model/vision_tower/.../q_proj/MatMul`) give the Hugging Face module
      path, and the path gives tower, block and layer;
    * structure: the vision tower is what is computed from `pixel_values`
      before it merges with the text embeddings, the projector is the bridge
      between the vision tower's last residual block and the merge, the
      language tower runs from the merge to the logits; residual branches that
      contain a softmax are attention blocks, branches with matmul ->
      activation -> matmul are MLP blocks; layers are counted along each
      tower's residual stream.

    Names win where both exist; every disagreement is a warning naming both
    answers. Without names (a stripped graph) the structure decides and the
    module path is synthesised (`vision.layers.0.attention.0`). The token
    embedding is a gather, never a matmul; `lm_head` is tagged `other`.
  }];
  let statistics = [
    Statistic<"numTagged", "tagged-matmuls", "Number of frozen-weight matmuls tagged">,
    Statistic<"numDisagreements", "disagreements", "Number of name/structure disagreements">
  ];
  let options = [
    Option<"useNames", "names", "bool", /*default=*/"true",
           "Use the name signal (initializer and node names)">,
    Option<"useStructure", "structure", "bool", /*default=*/"true",
           "Use the structure signal (dataflow from pixel_values, residual blocks)">,
  ];
}

def VLoRAReportTowers : Pass<"vlora-report-towers", "mlir::ModuleOp"> {
  let summary = "Print the tagged matmuls and the equivalent PEFT target_modules regex";
  let description = [{
    Prints one row per tagged matmul (module, tower, block, layer, in, out)
    and the PEFT `target_modules` regular expression that selects exactly the
    modules the given switches select, so it can be cross-checked with PEFT
    and Unsloth. Runs after `--vlora-classify-towers`; changes nothing.
  }];
  let options = [
    Option<"vision", "vision", "bool", "true", "finetune_vision_layers">,
    Option<"language", "language", "bool", "true", "finetune_language_layers">,
    Option<"attention", "attention", "bool", "true", "finetune_attention_modules">,
    Option<"mlp", "mlp", "bool", "true", "finetune_mlp_modules">,
    Option<"projector", "projector", "bool", "false", "also adapt the vision-language projector">,
    Option<"output", "output", "std::string", "\"-\"", "Where to write the report ('-' = stdout)">,
  ];
}

def VLoRAInjectLoRA : Pass<"vlora-inject-lora", "mlir::ModuleOp"> {
  let summary = "Replace the selected frozen matmuls by LoRA matmuls with new trainable adapters";
  let description = [{
    Reads the tags of `--vlora-classify-towers` and turns every selected
    frozen-weight `vlora.matmul(x, W)` into
    `vlora.lora_matmul(x, W, A, B){scale, dropout}` with two new trainable
    `vlora.param`s named by PEFT's keys,
    `base_model.model.<module>.lora_A.weight` `[r, in]` and
    `base_model.model.<module>.lora_B.weight` `[out, r]` (f32). The options
    mirror Unsloth's `FastVisionModel.get_peft_model` and PEFT's `LoraConfig`.

    Selection. Without `target-modules`, a tagged matmul is selected when its
    tower is enabled (`vision`, `language`, `projector`) and its block is
    enabled (`attention`, `mlp`); projector matmuls are plain MLPs and are
    selected whenever `projector` is on, whatever `attention`/`mlp` say. As in
    Unsloth, turning off both `vision` and `language`, or both `attention`
    and `mlp`, is an error. With `target-modules` the switches are not used
    (PEFT semantics): one element with a regex metacharacter other than `.`
    (`\ ^ $ | ? * + ( ) [ ] { }`) is a full-match ECMAScript regex on the
    module path; otherwise every element is a module name that matches a
    module path exactly or as a `.`-suffix. `lm_head` (tower `other`) and the
    embeddings are never targets. `exclude-modules` (same syntax) and
    `layers-to-transform` (matches `vlora.layer`; modules without a layer
    index are dropped, as in PEFT) filter the selection.

    Rank and scale. `rank-pattern` and `alpha-pattern` take
    `pattern:value` elements; a pattern matches a module path as PEFT's
    `(.*\.)?(pattern)` regex and the first matching element wins.
    `scale = alpha / r`, or `alpha / sqrt(r)` with `use-rslora`.

    Initial values. With `init-from` the adapters reference the tensors of a
    PEFT `adapter_model.safetensors`, which must hold exactly the selected
    modules' `lora_A`/`lora_B` (F32, right shapes). Otherwise they reference
    `adapters.init.safetensors` of the bundle (source `bundle`, offsets in
    its data section in key order), whose values the bundle writer draws
    from `init` and `seed` (recorded, with the rest of the configuration,
    in the module attribute `vlora.lora_config`).
  }];
  let dependentDialects = ["vlora::VLoRADialect"];
  let statistics = [
    Statistic<"numInjected", "injected", "Number of matmuls given a LoRA adapter">,
    Statistic<"numTrainable", "trainable-parameters", "Number of trainable adapter elements">
  ];
  let options = [
    Option<"rank", "r", "int64_t", /*default=*/"16", "LoRA rank (PEFT r)">,
    Option<"alpha", "alpha", "double", /*default=*/"16.0", "LoRA alpha (PEFT lora_alpha)">,
    Option<"dropout", "dropout", "double", /*default=*/"0.0",
           "Dropout probability on the LoRA path (PEFT lora_dropout), in [0, 1)">,
    Option<"useRslora", "use-rslora", "bool", /*default=*/"false",
           "Rank-stabilised LoRA: scale = alpha / sqrt(r) instead of alpha / r">,
    Option<"init", "init", "std::string", /*default=*/"\"kaiming\"",
           "Initialisation of A: 'kaiming' (PEFT default, kaiming-uniform a=sqrt(5)) or "
           "'gaussian' (normal, std 1/r); B is zero">,
    Option<"seed", "seed", "int64_t", /*default=*/"3407",
           "Seed of the initialisation (Unsloth random_state)">,
    Option<"vision", "vision", "bool", "true", "finetune_vision_layers">,
    Option<"language", "language", "bool", "true", "finetune_language_layers">,
    Option<"attention", "attention", "bool", "true", "finetune_attention_modules">,
    Option<"mlp", "mlp", "bool", "true", "finetune_mlp_modules">,
    Option<"projector", "projector", "bool", "false",
           "Also adapt the vision-language projector (all its matmuls)">,
    ListOption<"targetModules", "target-modules", "std::string",
               "PEFT target_modules: one full-match regex, or module names "
               "matched exactly or as '.'-suffixes">,
    ListOption<"excludeModules", "exclude-modules", "std::string",
               "PEFT exclude_modules (same syntax as target-modules)">,
    ListOption<"layersToTransform", "layers-to-transform", "int64_t",
               "PEFT layers_to_transform: only modules with these layer indices">,
    ListOption<"rankPattern", "rank-pattern", "std::string",
               "PEFT rank_pattern as pattern:r elements">,
    ListOption<"alphaPattern", "alpha-pattern", "std::string",
               "PEFT alpha_pattern as pattern:alpha elements">,
    Option<"initFrom", "init-from", "std::string", /*default=*/"\"\"",
           "Start from the adapters of this PEFT adapter_model.safetensors">,
  ];
}

def VLoRAFuseAttention : Pass<"vlora-fuse-attention", "mlir::ModuleOp"> {
  let summary = "Fuse the exporters' decomposed attention into vlora.attention";
  let description = [{
    Rewrites every

    ```
    %s = vlora.matmul %q, %k [transpose_b]     // [..., S, T]
    %c = vlora.mul %s, %scale                  // or div by it; optional
    %m = vlora.add %c, %mask                   // either order; optional
    %p = vlora.softmax %m axis -1
    %o = vlora.matmul %p, %v
    ```

    where `%scale` is a one-element constant, each intermediate has no
    other use, `q`, `k` and `v` share their leading dimensions (grouped-query
    heads already expanded) and the mask broadcasts to the scores, into
    `vlora.attention %q, %k, %v [mask %mask] scale s [transpose_k]`. The
    `[..., S, T]` scores and probabilities then never exist as a whole, and
    the training step's `vlora.attention_grad` recomputes them instead of
    keeping them for the backward. Anything else is left as it is. Runs
    before `--vlora-build-training-step`.
  }];
  let statistics = [
    Statistic<"numFused", "fused", "Attention blocks fused">
  ];
}

def VLoRAMixedPrecision : Pass<"vlora-mixed-precision", "mlir::ModuleOp"> {
  let summary = "Frozen matmul weights and matmul activations in bf16";
  let description = [{
    With `compute=bf16`, every frozen f32 parameter whose uses, in every
    function, are all the weight operand of a matmul-family op (`matmul`,
    `lora_matmul`, `lora_matmul_grad`, `linear_cross_entropy`; or the input
    of a `transpose` that only feeds such operands, as the dynamo exporter
    writes `MatMul(x, Transpose(W))`, and which then moves bf16) becomes a
    bf16 parameter of the bundle's `weights.bf16.bin` (source `bundle`,
    offsets assigned in name order, one copy per name). Its original
    location is kept in the `vlora.converted_from` attribute ({source, file,
    offset, length}); `vlora-compile` writes the file once at compile time,
    rounding each f32 to the nearest bf16 (ties to even), so no step ever
    converts a weight. Parameters with any other use (an embedding table
    read by `gather`, a norm's scale) keep their f32 bytes.

    With `activations` (the default), every f32 activation a matmul-family
    op reads is converted to bf16 too: the `lhs`/`rhs` of `matmul` that are
    not parameters (layer inputs, unfused attention's Q, K, V and
    probabilities, the backward's dY), `x` of `lora_matmul` and
    `lora_matmul_grad`, `input` of `linear_cross_entropy`, `q`, `k`, `v` of
    `attention` and `attention_grad`. Each value gets one `vlora.cast` right after its
    definition, shared by all its matmul-family readers, so the forward and
    the backward read the same bf16 copy and the activations kept for the
    backward take half the bytes when nothing else reads the f32 value. The
    ops get `f32_result`: bf16 operands, fp32 accumulation, f32 results.
    Everything else (norms, softmax, elementwise ops, the residual stream,
    `lora_matmul_grad`'s dY, adapters, optimizer state, the loss) stays f32.
    `activations=false` converts the weights only.

    `compute=f32` changes nothing.

    Runs after `--vlora-build-training-step`, so the reverse rules see f32
    types and the backward matmuls (dX = dY·Wᵀ) read the same bf16 bytes.
  }];
  let options = [
    Option<"compute", "compute", "std::string", /*default=*/"\"bf16\"",
           "The frozen weights' element type: bf16 or f32 (unchanged)">,
    Option<"activations", "activations", "bool", /*default=*/"true",
           "Convert the matmul-family ops' activation operands to bf16 too">,
  ];
  let statistics = [
    Statistic<"numConverted", "converted", "Number of weights stored in bf16">,
    Statistic<"bytesSaved", "bytes-saved", "Weight bytes saved (f32 - bf16)">,
    Statistic<"numCasts", "activation-casts",
              "Activations converted to bf16 for matmul-family ops">
  ];
}

def VLoRARematerialize : Pass<"vlora-rematerialize", "mlir::ModuleOp"> {
  let summary = "Recompute cheap forward values in the backward instead of "
                "keeping them (min-cut)";
  let description = [{
    In every function with an argument named `loss_scale` (the
    `@train_step` of `--vlora-build-training-step`), the forward is every op
    before the first one that reads `loss_scale` (the seed of the reverse
    sweep: the fused loss or `cross_entropy_grad`, which reads what the
    forward has just computed), the backward every op after it. Forward
    values the backward reads are kept alive from the forward to the
    backward: the activations that set the training step's peak memory.

    The pass chooses which of them to keep and which to recompute in the
    backward so that the bytes kept are minimal, as a minimum cut (the
    partitioner of PyTorch's AOTAutograd works the same way): every forward
    value is a node whose cut costs its bytes; parameters, constants and the
    function's arguments are free; a value computed by an op that is not
    cheap (`matmul`, `lora_matmul`, `conv`, `attention`, losses, anything
    outside the list below) must be computed by the forward; every value the
    backward reads must be reachable from kept values through cheap ops.
    Among the minimum cuts it takes the one nearest the backward (the least
    recomputation). Cheap ops are the elementwise ops (unary, binary,
    comparisons, `where`, `cast`), the data movement ops (`reshape`,
    `transpose`, `slice`, `concat`, `split`, `expand`, `pad`, `trilu`,
    `gather`s, `scatter_nd`, `masked_scatter`), the reductions, `softmax`,
    `log_softmax`, `cumsum`, `layer_norm` and `rms_norm`: memory-bound work
    that the backward redoes from the kept values (a norm's input, a
    `lora_matmul`'s f32 output) in place of keeping their results (the
    normalised rows, their bf16 copies, the activation function's
    intermediates).

    Each recomputed value is cloned once, right before the first backward
    op that reads it (its operands first), and the backward reads the clone.
    The clones run the same kernels on the same bytes, so the step's results
    are bitwise those of the program without the pass. Functions without a
    `loss_scale` argument (`@main`, `@optimizer_step`) are left alone.

    With `keep-bf16`, an f32 value that is kept is kept as a bf16 copy
    (rounded to nearest even; the forward's own `vlora.cast` to bf16 of it
    when there is one, else a new one right after it), and the backward
    reads it widened back to f32, so each kept f32 byte counts half in the
    cut. This is the precision autocast(bf16) keeps its activations in (a
    linear's output, the residual stream of a bf16 model), and the step's
    results are then no longer bitwise those of the program without the
    pass. `vlora-compile --train` runs the pass last (`--rematerialize=false`
    skips it); its `--mixed-precision bf16` turns `keep-bf16` on.

    Runs after `--vlora-mixed-precision`, so the bf16 copies of activations
    are values it can choose between.
  }];
  let options = [
    Option<"keepBf16", "keep-bf16", "bool", /*default=*/"false",
           "Keep the f32 values the backward reads as bf16 copies">,
  ];
  let statistics = [
    Statistic<"bytesBefore", "kept-bytes-before",
              "Bytes of forward values the backward read before the pass">,
    Statistic<"bytesAfter", "kept-bytes-after",
              "Bytes of forward values kept for the backward after the pass">,
    Statistic<"numRecomputed", "recomputed-ops",
              "Forward ops cloned into the backward">
  ];
}

def VLoRAFuseElementwise : Pass<"vlora-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Compute chains of elementwise ops as vlora.fused_elementwise";
  let description = [{
    Groups f32 elementwise ops (`neg` ... `ceil`, `gelu`, `add`, `sub`,
    `mul`, `div`, `max`, `min`, `pow`; `pow` by a one-element constant 2 of
    an operand of the result's shape as square) and the `cast`s between f32
    and bf16 into
    `vlora.fused_elementwise` ops, in every function: each group reads its
    inputs once and writes only the values used outside it, instead of one
    pass over memory per op. The results are bitwise those of the ops it
    replaces (every opcode is the unfused kernel's computation).

    In program order, an op joins the latest group one of its operands comes
    from when the group's ops have the op's result shape, every other
    operand is defined before the group's first op (where the fused op is
    placed), the op is at most 16 ops after the group's last one (so a
    backward op does not pull a forward value's computation, or lifetime,
    along) and the limits of a program hold (16 inputs, 64 instructions, 8
    results); otherwise it starts a group. Groups of one op stay as they
    are.

    First, each `cast` to bf16 of an f32 value made by a `reshape`,
    `transpose`, `expand` or `slice` that only the cast reads moves above
    it (a mixed-precision program casts a transposed, GQA-expanded K right
    before attention): the same values, but the data movement then moves
    bf16 and the cast can join the chain that computed the f32 value.

    Runs last, after the training step is built and rematerialised: the
    fused op has no gradient rule.
  }];
  let statistics = [
    Statistic<"numHoisted", "hoisted-casts",
              "Casts to bf16 moved above the data movement they followed">,
    Statistic<"numFused", "fused", "vlora.fused_elementwise ops made">,
    Statistic<"numFusedOps", "fused-ops", "Elementwise ops they replace">
  ];
}

def LowerVLoRAToVLRT : Pass<"lower-vlora-to-vlrt", "mlir::ModuleOp"> {
  let summary = "Bufferize the vlora program into a vlrt program over one arena";
  let description = [{
    Turns the vlora function into a vlrt program: every tensor becomes a
    buffer. Parameters become `vlrt.weight` (mapped from their files),
    constants `vlrt.constant`, graph inputs `vlrt.input` slices and every
    other value an arena slice. A static memory plan assigns offsets: each
    buffer lives from its definition to its last use (graph outputs to the
    end); `vlora.reshape` of an arena value aliases its input (no copy), and
    an elementwise op whose same-typed operand dies at it writes in place.
    Offsets are assigned greedily by decreasing size into the lowest gap
    free during the buffer's lifetime, aligned to 64 bytes; the function's
    `vlrt.arena_bytes` is the exact peak. Each remaining vlora op becomes one
    `vlrt.kernel` named after it, with its attributes as params.
  }];
  let dependentDialects = ["::vlora::vlrt::VLRTDialect"];
  let statistics = [
    Statistic<"numKernels", "kernels", "Number of kernel calls">,
    Statistic<"numAliases", "aliases", "Number of buffers that reuse their operand's bytes">
  ];
}

def VLoRABuildTrainingStep : Pass<"vlora-build-training-step", "mlir::ModuleOp"> {
  let summary = "Build @train_step (loss, accumulated adapter gradients) and "
                "@optimizer_step (clipping, AdamW)";
  let description = [{
    From the forward `func.func @main(pixel_values, input_ids, attention_mask)
    -> logits` with trainable `vlora.param`s (the adapters of
    `--vlora-inject-lora`), adds

    ```
    func.func @train_step(<@main's inputs>, %labels: tensor<BxSxi64>,
                          %loss_scale: tensor<f32>,
                          [%dropout_rng: tensor<2xi64>],
                          <adapter_1..n>, <grad_1..n>)
        -> (loss: tensor<f32>, <grad_1..n>')
    func.func @optimizer_step(<adapter_1..n>, <grad_1..n>, <exp_avg_1..n>,
                              <exp_avg_sq_1..n>, %lr: tensor<f32>,
                              %step: tensor<i64>, %max_grad_norm: tensor<f32>,
                              %weight_decay: tensor<f32>)
        -> (grad_norm: tensor<f32>, <adapter_1..n>', <exp_avg_1..n>',
            <exp_avg_sq_1..n>')
    ```

    Arguments and results are named (`vlora.name`) by the adapter's PEFT key,
    `<key>.grad`, `<key>.exp_avg` and `<key>.exp_avg_sq`, in the order the
    adapters appear in `@main`; a result carries the name of the argument it
    replaces. `@main` is kept unchanged (evaluation, and the adapters' initial
    bytes). `@train_step` returns the micro-batch's loss and
    `grad + loss_scale * dloss/dadapter`, so the runtime accumulates
    gradients over micro-batches; `@optimizer_step` returns the global norm
    of the gradients, clips them as `torch.nn.utils.clip_grad_norm_` does
    (`max_grad_norm` = +inf: no clipping) and applies `torch.optim.AdamW`
    (`step` is 1 for the first update). With LoRA dropout > 0,
    `@train_step` takes `dropout_rng` = [seed, counter] and every
    `lora_matmul` draws its mask from it and its `stream` index. See
    docs/training.md.

    The loss is transformers' causal-LM cross-entropy. When the logits are
    a matmul by a weight that gets no gradient (the frozen lm_head), the
    matmul and the loss become one `vlora.linear_cross_entropy` that
    multiplies out only the predicted positions (`fuse-lm-head=false`
    keeps `vlora.cross_entropy` + `vlora.cross_entropy_grad`).

    Activity analysis: a value is active when it is (transitively) computed
    from a trainable parameter and reaches the logits; integer and boolean
    values never are. Only active ops get reverse rules
    (`VLoRAGradientOpInterface`, `passes/Autodiff/`), each told per operand
    whether a gradient is needed; an active op without a rule is an error at
    the op. Fan-out gradients are summed. A final check fails the pass if a
    gradient of a frozen parameter exists.
  }];
  let dependentDialects = ["::vlora::VLoRADialect", "::mlir::func::FuncDialect"];
  let statistics = [
    Statistic<"numActiveOps", "active-ops", "Number of forward ops differentiated">,
    Statistic<"numBackwardOps", "backward-ops", "Number of ops emitted by reverse rules">,
    Statistic<"numAdapters", "adapters", "Number of trainable parameters updated">,
    Statistic<"numFusedLosses", "fused-losses",
              "Losses fused with the lm_head matmul (linear_cross_entropy)">
  ];
  let options = [
    Option<"loss", "loss", "std::string", "\"causal-lm\"",
           "The loss (causal-lm: shift by one, ignore_index -100, mean)">,
    Option<"optimizer", "optimizer", "std::string", "\"adamw\"",
           "The optimizer (adamw: torch.optim.AdamW)">,
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.999", "AdamW beta2">,
    Option<"eps", "eps", "double", "1e-8", "AdamW epsilon">,
    Option<"ignoreIndex", "ignore-index", "int64_t", "-100",
           "Label value that is not predicted (transformers: -100)">,
    Option<"fuseLmHead", "fuse-lm-head", "bool", "true",
           "Fuse a logits matmul whose weight gets no gradient (the frozen "
           "lm_head) into the loss: vlora.linear_cross_entropy">,
  ];
}

#endif // VLORA_PASSES_TD
