"""Architecture strings as PyTorch writes them: parsing, shape checks, messages naming the layer."""
import pytest

from mnist_viz.compute.arch import ArchError, Architecture, parse

CNN = ("Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Conv2d(8,16,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),"
       "Linear(784,64),ReLU(),Linear(64,10)")


def test_the_example_cnn_parses_with_every_shape():
    a = parse(CNN)
    assert [tuple(s) for s in a.shapes] == [(8, 28, 28), (8, 28, 28), (8, 14, 14), (16, 14, 14), (16, 14, 14),
                                            (16, 7, 7), (784,), (64,), (64,), (10,)]
    assert a.text == CNN and a.classes == 10 and not a.is_mlp
    assert set(a.param_shapes()) == {"0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                                     "9.weight", "9.bias"}
    assert a.param_shapes()["3.weight"] == (16, 8, 3, 3) and a.param_shapes()["7.weight"] == (64, 784)


def test_pytorch_spellings_are_accepted():
    """nn. prefixes, keyword arguments, square tuples and spaces as people write them."""
    a = parse("nn.Conv2d(in_channels=1, out_channels=4, kernel_size=(3, 3), stride=2), nn.ReLU(), "
              "nn.Flatten(), nn.Linear(676, 10)")
    assert a.shapes[0] == (4, 13, 13) and a.text == "Conv2d(1,4,3,stride=2),ReLU(),Flatten(),Linear(676,10)"


@pytest.mark.parametrize("text", ["Flatten(),Linear(784,10),ReLU()", "Flatten(),ReLU(),Linear(784,10)",
                                  "Linear(784,24),Linear(24,10)", "Linear(784,16),ReLU(),ReLU(),Linear(16,10)",
                                  "Linear(784,16),ReLU(),Dropout(0.2),Linear(16,8),ReLU(),Linear(8,10)"])
def test_a_summary_by_widths_hides_nothing(text):
    """Guards against a network shown by its widths ('784-10') when the widths hide layers that
    change its results (a trailing ReLU, none between two Linears, a dropout after one layer only):
    those are shown by their layers (a first user's trial)."""
    assert parse(text).short == parse(text).text


def test_mlp_shorthand_equals_its_string():
    assert Architecture.mlp([784, 256, 128, 10]).text == "Linear(784,256),ReLU(),Linear(256,128),ReLU(),Linear(128,10)"
    assert parse("Linear(784,256),ReLU(),Linear(256,128),ReLU(),Linear(128,10)").short == "784-256-128-10"


def test_an_mlps_widths_are_an_architecture():
    """The name the program prints for an MLP (784-256-128-10, in every table and log) is also
    what --arch takes for it; a width that does not fit the images says so like any layer."""
    assert parse("784-256-128-10").text == Architecture.mlp([784, 256, 128, 10]).text
    assert parse(" 784 - 10 ").text == "Linear(784,10)"
    with pytest.raises(ArchError, match="takes 700 inputs"):
        parse("700-10")
    with pytest.raises(ArchError, match="784-128-10"):
        parse("784,128,10")


def test_the_shipped_cnn_has_a_name():
    """Guards against `--arch cnn` failing (a first user's guess: the README and the train recipe
    call it 'the CNN', and the window's --arch took only layer strings): the name, in any case,
    is the shipped CNN's layers; an unknown name says which names there are."""
    from mnist_viz.compute.recipe import CNN_ARCH
    assert parse("cnn").text == parse(" CNN ").text == parse(CNN_ARCH).text
    with pytest.raises(ArchError, match="'cnn' for the shipped CNN"):
        parse("resnet")


def test_the_shipped_cnn_on_other_images_says_it_is_made_for_28x28():
    """Guards against `--arch cnn` on 8 x 8 images answering with a fix for one of its layers
    (`use Linear(256,256)`): the user typed a name, not layers; the error says whose layers they
    are, what they are made for, and what to write instead."""
    with pytest.raises(ArchError) as e:
        parse("cnn", (8, 8))
    assert str(e.value) == ("'cnn' is the shipped CNN, whose layers are made for 28 x 28 images, not 8 x 8; write an "
                            "architecture for these images (--help shows how)")


@pytest.mark.parametrize("text,fragment", [
    ("Conv2d(1,8,5),ReLU(),Linear(100,10)", "layer 2 Linear(100,10): a Linear needs flat input, but [8, 24, 24]"),
    ("Linear(784,64),ReLU(),Linear(32,10)", "layer 2 Linear(32,10): takes 32 inputs, but [64] = 64 values arrive; use Linear(64,10)"),
    ("Conv2d(3,8,3),Flatten(),Linear(5408,10)", "layer 0 Conv2d(3,8,3): takes 3 input channels, but 1 arrive "
                                                "(the images have one channel); use Conv2d(1,8,3)"),
    ("Conv2d(1,8,5),MaxPool2d(2),Conv2d(8,8,5),MaxPool2d(2),Conv2d(8,8,5),Flatten(),Linear(8,10)",
     "a 5x5 kernel does not fit a 4x4 input (padding 0); use kernel_size 4 or less, or more padding"),
    ("Conv2d(1,8,29),Flatten(),Linear(8,10)", "kernel_size must be in 1..15"),
    ("Conv2d(1,8,3),MaxPool2d(2),Conv2d(8,8,3)", "the last layer 2 Conv2d(8,8,3) gives [8, 11, 11]"),
    ("Linear(784,10),Tanh()", "layer 1 'Tanh()': unsupported layer Tanh"),
    ("Linear(784,10),Dropout(1.5)", "layer 1 'Dropout(1.5)': p must be in [0, 1)"),
    ("Linear(784,'10')", "must be a whole number"),
    ("Linear(784,10.5)", "must be a whole number"),
    ("__import__('os').system('x')", "layer 0"),
    ("Linear(784,10", "cannot read"),
    ("", "empty"),
    ("Conv2d(1,8,(3,5)),Flatten(),Linear(10,10)", "only square kernel_size"),
    ("Linear(784)", "layer 0 'Linear(784)'"),
])

def test_bad_strings_name_the_offending_layer(text, fragment):
    """Guards against a wrong or dangerous string building something else or failing without saying where."""
    with pytest.raises(ArchError) as e:
        parse(text)
    assert fragment in str(e.value), str(e.value)


def test_non_square_images_and_misfit():
    a = parse("Conv2d(1,4,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),Linear(128,3)", (9, 16))
    assert a.shapes[2] == (4, 4, 8) and a.misfit(9, 16, 3) is None
    assert "does not fit" in a.misfit(28, 28, 3)
    # An MLP reads any images with its number of pixels.
    assert Architecture.mlp([784, 10]).misfit(14, 56, 10) is None


@pytest.mark.parametrize("text,want", [
    ("nn.Sequential(nn.Flatten(),nn.Linear(784,10))", "Flatten(),Linear(784,10)"),
    ("Conv2d(1,4,3,bias=True,dilation=1,groups=1),ReLU(inplace=True),Flatten(1),Linear(2704,10)",
     "Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)"),
    ("Conv2d(1,4,5,padding='same'),Flatten(start_dim=1,end_dim=-1),Linear(3136,10,bias=True)",
     "Conv2d(1,4,5,padding=2),Flatten(),Linear(3136,10)"),
    ("Conv2d(1,4,3,padding='valid'),MaxPool2d(2,ceil_mode=False),Dropout(0.2,inplace=False),Flatten(),Linear(676,10)",
     "Conv2d(1,4,3),MaxPool2d(2),Dropout(0.2),Flatten(),Linear(676,10)"),
])
def test_pytorch_spellings_of_the_supported_layers(text, want):
    """Guards against PyTorch's own spellings of what this program implements (its keyword
    defaults, inplace, Flatten(1), 'same' padding, a whole nn.Sequential) being refused with
    Python's TypeError text (a first user's trial: 'Conv2d.got an unexpected keyword argument')."""
    assert parse(text).text == want


@pytest.mark.parametrize("text,fragments", [
    ("Conv2d(1,4,3,bias=False),Flatten(),Linear(2704,10)", ["bias=False is not supported", "remove it"]),
    ("Conv2d(1,4,3,groups=2),Flatten(),Linear(2704,10)", ["groups=2 is not supported (only groups=1"]),
    ("Flatten(2),Linear(784,10)", ["start_dim=2 is not supported"]),
    ("Conv2d(1,4,4,padding='same'),Flatten(),Linear(3136,10)", ["'same'", "odd kernel_size at stride 1"]),
    ("Conv2d(1,4,3,foo=1),Flatten(),Linear(2704,10)", ["Conv2d has no argument 'foo' here",
                                                        "it takes Conv2d(in_channels, out_channels, kernel_size"]),
    ("Linear(784,10,5)", ["Linear got 3 positional arguments; it takes Linear(in_features, out_features)"]),
    ("Flatten(),Sequential(Linear(784,10))", ["unsupported layer Sequential (write its layers alone"]),
])
def test_pytorch_arguments_this_program_lacks_are_named(text, fragments):
    with pytest.raises(ArchError) as e:
        parse(text)
    for f in fragments:
        assert f in str(e.value), str(e.value)
