const a=["potential","new","repeat","loyal","at_risk","churned","won_back","lost"],o=["platinum","gold","iron","lead"];export{o as P,a as S};
