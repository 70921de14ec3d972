"""WeCom callback crypto against the protocol reference's vectors A, B and C, verbatim."""

from __future__ import annotations

import pytest

from siyu.wecom.crypto import (
    Base64Error,
    CallbackCrypto,
    DecryptError,
    IllegalAesKeyError,
    ReceiveIdError,
    SignatureError,
    pad,
    signature,
    unpad,
)

A = CallbackCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
A1 = (
    "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "1409659589",
    "263014780",
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
)
A2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUk"
    "SUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ek"
    "UNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+"
    "rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R"
    "07+qN+E7Q=="
)
A2 = ("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", A2_ENCRYPT)
A2_MSG = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)

B = CallbackCrypto(
    "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
)
B1 = (
    "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "1476416373",
    "47744683",
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
)
B2_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+F"
    "q72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbf"
    "vhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXA"
    "yh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
B2 = ("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", B2_ENCRYPT)
B2_MSG = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779"
    "</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)

C = CallbackCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
C1 = (
    "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
    "1411443780",
    "437374425",
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
)
C2_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRv"
    "ZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1"
    "yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGA"
    "POQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
C2 = ("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", C2_ENCRYPT)
C2_MSG = (
    "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n"
    "<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>"
)
C3_PLAIN = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab5"
    "32d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>141152"
    "5903</CreateTime>\n</xml>"
)
C3_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ"
    "+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p"
    "9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kF"
    "xtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)


@pytest.mark.parametrize(
    ("crypto", "vector", "expected"),
    [
        (A, A1, b"1616140317555161061"),
        (A, A2, A2_MSG.encode()),
        (B, B1, b"1288432023552776189"),
        (B, B2, B2_MSG.encode()),
        (C, C1, b"5927782489442352469"),
        (C, C2, C2_MSG.encode()),
    ],
    ids=["A1", "A2", "B1", "B2", "C1", "C2"],
)
def test_vectors_verify_and_decrypt(crypto, vector, expected):
    assert crypto.verify_and_decrypt(*vector) == expected


def test_vector_c3_encrypts_and_signs_exactly():
    encrypt = C.encrypt(C3_PLAIN.encode(), random_prefix=b"1234567890123456")
    assert encrypt == C3_ENCRYPT
    assert C.sign("1411525903", "461056294", encrypt) == "407518b7649e86ef23978113f92d27afa9296533"


def test_round_trip_with_a_random_prefix_and_aligned_lengths():
    for size in (0, 1, 11, 12, 43, 44, 1000):  # 16+4+len+18 hits a 32-byte boundary at 12 and 44
        message = ("消" * size).encode()[:size]
        assert B.decrypt(B.encrypt(message)) == message


def test_padding_uses_32_byte_blocks():
    assert len(pad(b"x" * 32)) == 64 and pad(b"x" * 32)[-1] == 32
    assert pad(b"x" * 31)[-1] == 1
    assert unpad(pad(b"hello")) == b"hello"


def test_wrong_signature_is_a_signature_error():
    with pytest.raises(SignatureError) as error:
        A.verify_and_decrypt("0" * 40, *A2[1:])
    assert error.value.code == -40001
    other_token = CallbackCrypto("other", A.encoding_aes_key, A.receive_id)
    with pytest.raises(SignatureError):
        other_token.verify(*A2)


def test_wrong_receiveid_is_refused():
    wrong = CallbackCrypto(A.token, A.encoding_aes_key, "ww_someone_else")
    with pytest.raises(ReceiveIdError) as error:
        wrong.verify_and_decrypt(*A2)
    assert error.value.code == -40005


def test_bad_padding_from_a_wrong_key_is_a_decrypt_error():
    wrong_key = CallbackCrypto(A.token, B.encoding_aes_key, A.receive_id)
    with pytest.raises(DecryptError):
        wrong_key.decrypt(A2_ENCRYPT)


def test_bad_base64_is_a_base64_error():
    with pytest.raises(Base64Error) as error:
        A.decrypt("not base64 at all!!")
    assert error.value.code == -40010


def test_truncated_ciphertext_is_a_decrypt_error():
    with pytest.raises(DecryptError):
        A.decrypt(A2_ENCRYPT[:20])


def test_illegal_aes_key():
    with pytest.raises(IllegalAesKeyError):
        CallbackCrypto("t", "short", "ww").decrypt(A2_ENCRYPT)


def test_signature_sorts_plain_strings():
    # the worked example of the protocol text: sorted ["1372623149", "1409659813", "QDG6eK", "RypEv…"]
    assert signature("QDG6eK", "1409659813", "1372623149", A2_ENCRYPT) == A2[0]
